//! CUDA host of ambient. Empty until the CUDA host issue fills it: training and sampling on
//! NVIDIA GPUs through cust and our own PTX kernels.
#![forbid(unsafe_code)]
