"""Tools around the library, not the library: ``python -m xpcnn.tools.bench`` (CPU speed against
PyTorch), ``python -m xpcnn.tools.gpu_check`` (the one-shot GPU check) and
``python -m xpcnn.tools.cuda_compile`` (the CUDA kernels compiled without a GPU).  Nothing in
``xpcnn`` imports them; they import ``xpcnn`` like any user."""
