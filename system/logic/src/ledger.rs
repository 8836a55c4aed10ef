//! The ledger: money in integer minor units (cents), split 50/30/20, conserved exactly.
//!
//! Every contribution is distributed to three accounts: 50% to the community it is for,
//! 30% to the contributing nation and 20% to the reserve. Amounts are `u64` minor units;
//! the split is computed in `u128` so that no intermediate product can overflow.
//!
//! # Remainder rule
//!
//! With [`Rounding::Floor`] (the rule):
//!
//! - `community = floor(amount * 50 / 100)`
//! - `nation    = floor(amount * 30 / 100)`
//! - `reserve   = amount - community - nation`
//!
//! The reserve absorbs the remainder (the community share loses at most 0.5 of a unit to
//! flooring and the nation share at most 0.9, so the reserve gets its own 20% plus 0 or 1
//! unit), and the three shares always add up to the amount exactly: money is neither
//! created nor destroyed. Examples: 7 → 3 / 2 / 2; 3 → 1 / 0 / 2; 1 → 0 / 0 / 1.
//!
//! [`Rounding::Nearest`] is the planted bug `ledger-rounding`: each share is rounded to the
//! nearest unit (halves up) independently, so 3 → 2 / 1 / 1 = 4 units from 3. The
//! conservation check ([`Ledger::check_conserved`]) is what exposes it.
//!
//! Map: [`Account`], [`Rounding`], [`Distribution`], [`LedgerError`], [`Ledger`],
//! [`Imbalance`] (the conservation check's failure).
//!
//! Not covered: currencies and exchange (one currency per deployment), persistence (the
//! origin rebuilds its ledger from its apply log), authorisation of withdrawals.

use std::collections::BTreeMap;

/// Share of each contribution for the community, in percent.
pub const COMMUNITY_PERCENT: u64 = 50;
/// Share of each contribution for the contributing nation, in percent.
pub const NATION_PERCENT: u64 = 30;
/// Share of each contribution for the reserve, in percent.
pub const RESERVE_PERCENT: u64 = 20;
const _: () = assert!(COMMUNITY_PERCENT + NATION_PERCENT + RESERVE_PERCENT == 100);

/// Longest community or nation name accepted, in bytes (names become map keys and labels;
/// an unbounded name is unbounded memory).
pub const NAME_BYTES_MAX: usize = 128;

/// Largest single contribution or withdrawal, in minor units (10^15: ten trillion in
/// major units). A bound every node checks the same way (see
/// [`crate::protocol::Operation::validate`]), so that a tower can refuse at the edge what
/// the origin would reject, and so that one operation can never overflow a balance alone.
pub const AMOUNT_MINOR_MAX: u64 = 1_000_000_000_000_000;

/// An account money can sit in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// A community's account (receives 50% of contributions made for it).
    Community(String),
    /// A contributing nation's account (receives 30% of its contributions).
    Nation(String),
    /// The common reserve (receives 20% plus the rounding remainder).
    Reserve,
}

/// How shares are rounded. `Floor` is the rule above. `Nearest` rounds each share to the
/// nearest unit independently (the planted bug `ledger-rounding`: it creates or destroys
/// minor units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Floor the community and nation shares; the reserve takes the remainder (correct).
    Floor,
    /// Round every share to the nearest unit, halves up (bug: not conserving).
    Nearest,
}

/// The three shares of one contribution, in minor units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distribution {
    /// To the community.
    pub community: u64,
    /// To the contributing nation.
    pub nation: u64,
    /// To the reserve.
    pub reserve: u64,
}

impl Distribution {
    /// The sum of the three shares (`u128`: with `Nearest` it may exceed the amount).
    pub fn total(&self) -> u128 {
        u128::from(self.community) + u128::from(self.nation) + u128::from(self.reserve)
    }
}

/// Why a ledger operation was refused. A refused operation changes nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LedgerError {
    /// A contribution or withdrawal of zero minor units.
    #[error("amount must be at least one minor unit")]
    ZeroAmount,
    /// One amount above [`AMOUNT_MINOR_MAX`].
    #[error("amount {0} exceeds the limit of {AMOUNT_MINOR_MAX} minor units per operation")]
    AmountTooLarge(u64),
    /// A balance or a running total would exceed its integer range.
    #[error("amount would overflow a ledger balance or total")]
    Overflow,
    /// The account holds less than the withdrawal.
    #[error("insufficient funds in {account:?}: balance {balance}, withdrawal {amount}")]
    InsufficientFunds {
        /// the account
        account: Account,
        /// its balance
        balance: u64,
        /// the withdrawal asked for
        amount: u64,
    },
    /// A community or nation name is empty.
    #[error("community and nation names must not be empty")]
    EmptyName,
    /// A community or nation name is longer than [`NAME_BYTES_MAX`].
    #[error("name of {len} bytes exceeds the limit of {NAME_BYTES_MAX} bytes")]
    NameTooLong {
        /// the name's length in bytes
        len: usize,
    },
}

/// The conservation check failed: the accounts do not hold what came in minus what went
/// out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "ledger not conserved: accounts hold {held} minor units, expected {expected} (contributed minus withdrawn)"
)]
pub struct Imbalance {
    /// contributed − withdrawn (0 if more was withdrawn than contributed)
    pub expected: u128,
    /// the sum of all balances
    pub held: u128,
}

/// Balances per account plus the running totals the conservation check compares them to.
#[derive(Clone, Debug)]
pub struct Ledger {
    rounding: Rounding,
    balances: BTreeMap<Account, u64>,
    /// Sum of accepted contribution amounts. Kept apart from the balances on purpose: the
    /// conservation check compares two independently maintained numbers.
    contributed_minor: u128,
    /// Sum of accepted withdrawals.
    withdrawn_minor: u128,
}

/// Check one amount: 1 to [`AMOUNT_MINOR_MAX`] minor units.
pub fn check_amount(amount_minor: u64) -> Result<(), LedgerError> {
    if amount_minor == 0 {
        return Err(LedgerError::ZeroAmount);
    }
    if amount_minor > AMOUNT_MINOR_MAX {
        return Err(LedgerError::AmountTooLarge(amount_minor));
    }
    Ok(())
}

/// Check a community or nation name: 1 to [`NAME_BYTES_MAX`] bytes.
pub fn check_name(name: &str) -> Result<(), LedgerError> {
    if name.is_empty() {
        return Err(LedgerError::EmptyName);
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(LedgerError::NameTooLong { len: name.len() });
    }
    Ok(())
}

impl Ledger {
    /// An empty ledger that splits with `rounding`.
    pub fn new(rounding: Rounding) -> Self {
        Ledger {
            rounding,
            balances: BTreeMap::new(),
            contributed_minor: 0,
            withdrawn_minor: 0,
        }
    }

    /// The rounding this ledger splits with.
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// The shares of `amount_minor` (see the module doc for the remainder rule).
    pub fn split(amount_minor: u64, rounding: Rounding) -> Distribution {
        let amount = u128::from(amount_minor);
        // Each share is at most the amount, so it fits a u64; the conversions cannot fail.
        let narrow = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
        let d = match rounding {
            Rounding::Floor => {
                let community = amount * u128::from(COMMUNITY_PERCENT) / 100;
                let nation = amount * u128::from(NATION_PERCENT) / 100;
                let reserve = amount - community - nation;
                Distribution {
                    community: narrow(community),
                    nation: narrow(nation),
                    reserve: narrow(reserve),
                }
            }
            Rounding::Nearest => {
                let round = |pct: u64| (amount * u128::from(pct) + 50) / 100;
                Distribution {
                    community: narrow(round(COMMUNITY_PERCENT)),
                    nation: narrow(round(NATION_PERCENT)),
                    reserve: narrow(round(RESERVE_PERCENT)),
                }
            }
        };
        debug_assert!(d.community <= amount_minor && d.nation <= amount_minor);
        debug_assert!(d.reserve <= amount_minor);
        if rounding == Rounding::Floor {
            debug_assert_eq!(d.total(), amount);
        }
        d
    }

    /// Record a contribution of `amount_minor` for `community` from `nation` and credit the
    /// three shares. All checks happen before any balance changes: an error changes nothing.
    pub fn contribute(
        &mut self,
        community: &str,
        nation: &str,
        amount_minor: u64,
    ) -> Result<Distribution, LedgerError> {
        check_name(community)?;
        check_name(nation)?;
        check_amount(amount_minor)?;
        let d = Self::split(amount_minor, self.rounding);
        let contributed = self
            .contributed_minor
            .checked_add(u128::from(amount_minor))
            .ok_or(LedgerError::Overflow)?;
        let credits = [
            (Account::Community(community.to_string()), d.community),
            (Account::Nation(nation.to_string()), d.nation),
            (Account::Reserve, d.reserve),
        ];
        // The three accounts are distinct (different variants), so checking each against
        // its current balance is enough.
        let mut new_balances = Vec::with_capacity(credits.len());
        for (account, share) in credits {
            let now = self.balance(&account);
            let next = now.checked_add(share).ok_or(LedgerError::Overflow)?;
            new_balances.push((account, next));
        }
        for (account, next) in new_balances {
            self.balances.insert(account, next);
        }
        self.contributed_minor = contributed;
        Ok(d)
    }

    /// Pay money out of an account (e.g. a community spends); error if insufficient.
    pub fn withdraw(&mut self, account: &Account, amount_minor: u64) -> Result<(), LedgerError> {
        match account {
            Account::Community(n) | Account::Nation(n) => check_name(n)?,
            Account::Reserve => {}
        }
        if amount_minor == 0 {
            return Err(LedgerError::ZeroAmount);
        }
        let balance = self.balance(account);
        if balance < amount_minor {
            return Err(LedgerError::InsufficientFunds {
                account: account.clone(),
                balance,
                amount: amount_minor,
            });
        }
        let withdrawn = self
            .withdrawn_minor
            .checked_add(u128::from(amount_minor))
            .ok_or(LedgerError::Overflow)?;
        self.balances
            .insert(account.clone(), balance - amount_minor);
        self.withdrawn_minor = withdrawn;
        Ok(())
    }

    /// The balance of `account` (0 if it never received anything).
    pub fn balance(&self, account: &Account) -> u64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Every account that ever received money, with its balance.
    pub fn balances(&self) -> &BTreeMap<Account, u64> {
        &self.balances
    }

    /// The sum of all accepted contributions.
    pub fn contributed_minor(&self) -> u128 {
        self.contributed_minor
    }

    /// The sum of all accepted withdrawals.
    pub fn withdrawn_minor(&self) -> u128 {
        self.withdrawn_minor
    }

    /// The sum of all balances, recomputed from the accounts.
    pub fn held_minor(&self) -> u128 {
        self.balances.values().map(|&b| u128::from(b)).sum()
    }

    /// Ok iff held == contributed − withdrawn, to the minor unit.
    pub fn check_conserved(&self) -> Result<(), Imbalance> {
        let held = self.held_minor();
        match self.contributed_minor.checked_sub(self.withdrawn_minor) {
            Some(expected) if expected == held => Ok(()),
            Some(expected) => Err(Imbalance { expected, held }),
            None => Err(Imbalance { expected: 0, held }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn floor(amount: u64) -> (u64, u64, u64) {
        let d = Ledger::split(amount, Rounding::Floor);
        (d.community, d.nation, d.reserve)
    }

    #[test]
    fn floor_split_of_small_and_extreme_amounts() {
        // Goal: the documented remainder rule, on the amounts where rounding matters.
        assert_eq!(floor(1), (0, 0, 1));
        assert_eq!(floor(2), (1, 0, 1));
        assert_eq!(floor(3), (1, 0, 2));
        assert_eq!(floor(7), (3, 2, 2));
        assert_eq!(floor(100), (50, 30, 20));
        assert_eq!(floor(101), (50, 30, 21));
        let m = u64::MAX; // 18446744073709551615
        let (c, n, r) = floor(m);
        assert_eq!(c, m / 2);
        assert_eq!(n, 5_534_023_222_112_865_484);
        assert_eq!(u128::from(c) + u128::from(n) + u128::from(r), u128::from(m));
    }

    #[test]
    fn nearest_rounding_creates_money_and_the_check_sees_it() {
        // Goal: the planted bug `ledger-rounding` is visible to check_conserved.
        let d = Ledger::split(3, Rounding::Nearest);
        assert_eq!((d.community, d.nation, d.reserve), (2, 1, 1));
        let mut bad = Ledger::new(Rounding::Nearest);
        bad.contribute("kibera", "ke", 3).unwrap();
        assert_eq!(
            bad.check_conserved(),
            Err(Imbalance {
                expected: 3,
                held: 4
            })
        );
        assert!(
            bad.check_conserved()
                .unwrap_err()
                .to_string()
                .contains("hold 4")
        );
        let mut good = Ledger::new(Rounding::Floor);
        good.contribute("kibera", "ke", 3).unwrap();
        assert_eq!(good.check_conserved(), Ok(()));
    }

    #[test]
    fn contribution_credits_three_accounts() {
        // Goal: contribute credits community, nation and reserve and counts the amount.
        let mut l = Ledger::new(Rounding::Floor);
        l.contribute("kibera", "ke", 101).unwrap();
        l.contribute("kibera", "ug", 7).unwrap();
        assert_eq!(l.balance(&Account::Community("kibera".into())), 53);
        assert_eq!(l.balance(&Account::Nation("ke".into())), 30);
        assert_eq!(l.balance(&Account::Nation("ug".into())), 2);
        assert_eq!(l.balance(&Account::Reserve), 23);
        assert_eq!(l.contributed_minor(), 108);
        assert_eq!(l.held_minor(), 108);
        assert_eq!(l.balances().len(), 4);
    }

    #[test]
    fn insufficient_funds_is_refused_and_changes_nothing() {
        // Goal: a withdrawal larger than the balance is an error value and a no-op.
        let mut l = Ledger::new(Rounding::Floor);
        l.contribute("kibera", "ke", 100).unwrap();
        let acct = Account::Community("kibera".into());
        assert_eq!(
            l.withdraw(&acct, 51),
            Err(LedgerError::InsufficientFunds {
                account: acct.clone(),
                balance: 50,
                amount: 51
            })
        );
        assert_eq!(l.balance(&acct), 50);
        l.withdraw(&acct, 50).unwrap();
        assert_eq!(l.balance(&acct), 0);
        assert_eq!(l.withdrawn_minor(), 50);
        assert_eq!(l.check_conserved(), Ok(()));
        assert!(matches!(
            l.withdraw(&Account::Nation("nowhere".into()), 1),
            Err(LedgerError::InsufficientFunds { balance: 0, .. })
        ));
    }

    #[test]
    fn zero_empty_and_overflow_are_errors() {
        // Goal: invalid input is refused with the right error and leaves the ledger as it was.
        let mut l = Ledger::new(Rounding::Floor);
        assert_eq!(
            l.contribute("kibera", "ke", 0),
            Err(LedgerError::ZeroAmount)
        );
        assert_eq!(l.contribute("", "ke", 5), Err(LedgerError::EmptyName));
        assert_eq!(l.contribute("kibera", "", 5), Err(LedgerError::EmptyName));
        assert_eq!(
            l.contribute(&"x".repeat(NAME_BYTES_MAX + 1), "ke", 5),
            Err(LedgerError::NameTooLong {
                len: NAME_BYTES_MAX + 1
            })
        );
        assert_eq!(
            l.withdraw(&Account::Reserve, 0),
            Err(LedgerError::ZeroAmount)
        );
        assert_eq!(
            l.contribute("kibera", "ke", AMOUNT_MINOR_MAX + 1),
            Err(LedgerError::AmountTooLarge(AMOUNT_MINOR_MAX + 1))
        );
        // The largest amount, again and again, until the community's balance would
        // overflow: refused, and the ledger stays as it was.
        let mut n = 0u128;
        let err = loop {
            let before = l.balances().clone();
            match l.contribute("kibera", "ke", AMOUNT_MINOR_MAX) {
                Ok(_) => n += 1,
                Err(e) => {
                    assert_eq!(l.balances(), &before);
                    break e;
                }
            }
        };
        assert_eq!(err, LedgerError::Overflow);
        assert_eq!(n, u128::from(u64::MAX / (AMOUNT_MINOR_MAX / 2)));
        assert_eq!(l.contributed_minor(), n * u128::from(AMOUNT_MINOR_MAX));
        assert_eq!(l.check_conserved(), Ok(()));
    }

    #[derive(Clone, Debug)]
    enum Step {
        Contribute(usize, usize, u64),
        Withdraw(usize, u64),
    }

    const COMMUNITIES: [&str; 3] = ["kibera", "mathare", "kisumu"];
    const NATIONS: [&str; 2] = ["ke", "ug"];

    fn account(i: usize) -> Account {
        match i % 6 {
            0..=2 => Account::Community(COMMUNITIES[i % 3].into()),
            3 | 4 => Account::Nation(NATIONS[i % 2].into()),
            _ => Account::Reserve,
        }
    }

    fn amount() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0u64..1_000,
            2 => any::<u64>(),
            1 => Just(u64::MAX),
            1 => (u64::MAX / 2)..=u64::MAX,
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..3, 0usize..2, amount()).prop_map(|(c, n, a)| Step::Contribute(c, n, a)),
            (0usize..6, amount()).prop_map(|(a, x)| Step::Withdraw(a, x)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Goal: with Floor rounding, money is conserved after every step of any sequence of
        /// contributions and withdrawals, and a refused step changes nothing.
        #[test]
        fn floor_conserves_after_every_step(steps in proptest::collection::vec(step(), 0..60)) {
            let mut l = Ledger::new(Rounding::Floor);
            for s in steps {
                let before = (l.balances().clone(), l.contributed_minor(), l.withdrawn_minor());
                let result = match s {
                    Step::Contribute(c, n, a) => l.contribute(COMMUNITIES[c], NATIONS[n], a).map(|d| {
                        assert_eq!(d.total(), u128::from(a));
                    }),
                    Step::Withdraw(i, a) => l.withdraw(&account(i), a),
                };
                if result.is_err() {
                    prop_assert_eq!(&before, &(l.balances().clone(), l.contributed_minor(), l.withdrawn_minor()));
                }
                prop_assert_eq!(l.check_conserved(), Ok(()));
            }
        }
    }
}
