//! tokenops server (work in progress).
