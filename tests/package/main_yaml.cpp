// Consumer of the installed package's optional `yaml` component (persist::yaml): YAML text
// through config/yaml.hpp, which needs the compiled yaml-cpp that persist::yaml links.
#include <persist/config/yaml.hpp>

#include <cstdio>

int main() {
    const auto j = persist::config::yaml_to_json("train:\n  batch_size: 64\n  lr: 0.5\n");
    const bool ok = j.at("train").at("batch_size") == 64 && j.at("train").at("lr") == 0.5;
    std::printf("persist consumer (yaml): %s\n", ok ? "all checks passed" : "FAILED");
    return ok ? 0 : 1;
}
