//! The in-memory store wired to the conformance checks.

use sovereign_store::{MemDisk, MemStore};

use crate::common::Backend;
use crate::conformance::conformance_tests;

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
