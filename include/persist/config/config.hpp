#pragma once
/// @file config.hpp
/// The config module without YAML: reflection and rules (reflect.hpp), the JSON loader and
/// writer (json.hpp) and the PersistConfig tree (persist_config.hpp). Header-only; needs
/// Boost.Hana and nlohmann_json. For YAML files and `load_config(path)` include
/// persist/config/yaml.hpp and link persist::yaml (yaml-cpp). docs/config.md.
#include "persist/config/json.hpp"
#include "persist/config/persist_config.hpp"
#include "persist/config/reflect.hpp"
