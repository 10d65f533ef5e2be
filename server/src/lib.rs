//! SyncKairos: real-time timer synchronization (work in progress).
