//! SyncKairos Kubernetes operator (work in progress).
