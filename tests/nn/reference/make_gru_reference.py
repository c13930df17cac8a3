#!/usr/bin/env python3
"""Reference values for tests/nn/test_gru.cpp: torch.nn.GRU(3, 4) in double on a fixed sequence,
printed in PERSIST's flat layout (W_i, W_h column-major, b_i, b_h; time-major columns).
Run with Debian's python3-torch: OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 make_gru_reference.py"""
import torch
torch.manual_seed(0)
I,H,T,B=3,4,3,2
g=torch.nn.GRU(I,H).double()
# flat params in PERSIST layout: W_i (3H x I col-major), W_h (3H x H col-major), b_i, b_h
flat=torch.cat([g.weight_ih_l0.detach().t().reshape(-1), g.weight_hh_l0.detach().t().reshape(-1), g.bias_ih_l0.detach(), g.bias_hh_l0.detach()])
x=torch.rand(T,B,I,dtype=torch.double)*2-1
h0=torch.rand(1,B,H,dtype=torch.double)*2-1
out,hT=g(x,h0)
def fmt(v): return ", ".join("%.17g"%a for a in v)
print("params", fmt(flat.tolist()))
# x time-major columns: column t*B+j = x[t,j,:]; column-major flat = for each column its I entries
print("x", fmt(x.reshape(T*B,I).reshape(-1).tolist()))
print("h0", fmt(h0[0].reshape(-1).tolist()))
print("out", fmt(out.reshape(T*B,H).reshape(-1).tolist()))
