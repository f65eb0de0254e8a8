//! tokenops client (work in progress).
