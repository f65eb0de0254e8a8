//! Terraform plugin protocol layer (work in progress).
