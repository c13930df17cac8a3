#pragma once
/// @file homeostasis.hpp
/// Module header of persist/homeostasis/: the homeostatic drive R_homeo(x) (seed sections 1, 7).
/// docs/homeostasis.md.
#include "persist/homeostasis/homeostat.hpp"
