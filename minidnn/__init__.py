"""minidnn: a small autograd and conv engine on NumPy/CuPy."""
