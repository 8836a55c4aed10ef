//! The in-memory store wired to the conformance checks, alone and under the injected
//! faults (its own fsync never fails: the failure checks run through a `FaultyStore`).

use sovereign_store::{Faults, FaultyStore, MemDisk, MemStore};

use crate::common::{Backend, Failing};
use crate::conformance::{conformance_tests, failing_tests};

pub struct Mem(MemDisk);

impl Backend for Mem {
    type S = MemStore;
    fn open(&self) -> MemStore {
        MemStore::new(self.0.clone())
    }
    fn crash(&self, store: MemStore) {
        drop(store);
        self.0.crash();
    }
}

fn backend(_test: &str) -> Option<Mem> {
    Some(Mem(MemDisk::new()))
}

conformance_tests!(backend);

/// The in-memory store behind the fault switchboard, as the turmoil tests run it.
mod faulty {
    use super::*;

    pub struct FaultyMem(MemDisk, Faults);

    impl Backend for FaultyMem {
        type S = FaultyStore<MemStore>;
        fn open(&self) -> Self::S {
            FaultyStore::new(MemStore::new(self.0.clone()), self.1.clone())
        }
        fn crash(&self, store: Self::S) {
            drop(store);
            self.0.crash();
        }
    }

    impl Failing for FaultyMem {
        fn break_commits(&self, _store: &Self::S) {
            self.1.fail_fsyncs_until_cleared();
        }
        fn mend_commits(&self, _store: &Self::S) {
            self.1.clear();
        }
    }

    fn backend(_test: &str) -> Option<FaultyMem> {
        Some(FaultyMem(MemDisk::new(), Faults::new()))
    }

    conformance_tests!(backend);
    failing_tests!(backend);
}
