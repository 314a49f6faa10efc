//! racegate-sim: a simulated GPU.
