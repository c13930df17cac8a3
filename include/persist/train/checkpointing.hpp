#pragma once
/// @file checkpointing.hpp
/// Helpers for checkpointing a whole PersistAgent (ARCHITECTURE.md: "Every trained artifact
/// can be checkpointed and resumed exactly"). The agent itself saves and loads with
/// `PersistAgent::save(path)` / `load(path)` (train/persist_agent.hpp), on top of
/// io/checkpoint.hpp (versioned, CRC-32C, atomic save, transactional load) and the state
/// protocol of core/state.hpp. This header has what those members share and what a training
/// program needs around them:
///
/// - the description an agent checkpoint carries in its metadata (kind, scalar, dimensions,
///   AgentOptions, curriculum) and its comparison, which names the first difference;
/// - periodic checkpoints in a directory with the newest `keep` kept (config `checkpoint:`
///   dir / every / keep) and `latest_checkpoint(dir)` to resume from.
///
/// docs/checkpoint.md, "Resuming a PersistAgent".
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/train/curriculum.hpp"

namespace persist::train {

/// Metadata key under which an agent checkpoint stores its description.
inline constexpr const char* agent_checkpoint_key = "persist_agent";
/// "kind" of an agent checkpoint's description.
inline constexpr const char* agent_checkpoint_kind = "PersistAgent";
/// Version of the agent's state layout (bumped when PersistAgent::visit_state changes).
inline constexpr std::int64_t agent_checkpoint_version = 1;

/// A curriculum as JSON: its options and the constants (threshold, lo, hi) of the wide and
/// target sets, so a checkpoint can tell whether the agent loading it follows the same one.
template <class T>
nlohmann::json describe_curriculum(const Curriculum<T>& c) {
    using nlohmann::json;
    const auto& o = c.options();
    auto constants = [](const viability::ConstraintSet<T>& s) {
        json a = json::array();
        for (Index k = 0; k < s.num_constraints(); ++k) {
            const auto& lc = s.constraint(k);
            a.push_back(json::array({static_cast<double>(lc.threshold), static_cast<double>(lc.lo),
                                     static_cast<double>(lc.hi)}));
        }
        return a;
    };
    return json{{"warmup_steps", o.warmup_steps},
                {"total_steps", o.total_steps},
                {"schedule", o.schedule == CurriculumSchedule::cosine ? "cosine" : "linear"},
                {"lambda_homeo_start", o.lambda_homeo_start},
                {"lambda_homeo_end", o.lambda_homeo_end},
                {"lambda_intr_start", o.lambda_intr_start},
                {"lambda_intr_end", o.lambda_intr_end},
                {"wide", constants(c.wide())},
                {"target", constants(c.target())}};
}

namespace detail {

inline std::string json_brief(const nlohmann::json& j) {
    if (j.is_null()) return "none";
    std::string s = j.dump();
    if (s.size() > 80) s = s.substr(0, 77) + "...";
    return s;
}

/// The first key path where `file` and `here` differ ("" when equal). Numbers compare by
/// value across JSON's integer kinds (a parsed 64 equals a written std::int64_t 64).
inline std::string first_difference(const nlohmann::json& file, const nlohmann::json& here, const std::string& path,
                                    std::string& file_value, std::string& here_value) {
    const auto join = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
    if (file.is_object() && here.is_object()) {
        for (const auto& [k, v] : here.items()) {
            if (!file.contains(k)) {
                file_value = "absent";
                here_value = json_brief(v);
                return join(k);
            }
            const auto d = first_difference(file[k], v, join(k), file_value, here_value);
            if (!d.empty()) return d;
        }
        for (const auto& [k, v] : file.items())
            if (!here.contains(k)) {
                file_value = json_brief(v);
                here_value = "absent";
                return join(k);
            }
        return "";
    }
    if (file.is_array() && here.is_array() && file.size() == here.size()) {
        for (std::size_t i = 0; i < here.size(); ++i) {
            const auto d = first_difference(file[i], here[i], path + "[" + std::to_string(i) + "]", file_value, here_value);
            if (!d.empty()) return d;
        }
        return "";
    }
    if (file == here) return "";
    file_value = json_brief(file);
    here_value = json_brief(here);
    return path.empty() ? "(root)" : path;
}

}  // namespace detail

/// Throws persist::CheckpointError unless the checkpoint's metadata `meta` describes an agent
/// like `here` (PersistAgent::checkpoint_description()): the message names the first differing
/// key and both values. Nothing is loaded by this check.
inline void check_agent_description(const std::filesystem::path& path, const nlohmann::json& meta,
                                    const nlohmann::json& here) {
    const std::string pre = "checkpoint '" + path.string() + "': ";
    if (!meta.is_object() || !meta.contains(agent_checkpoint_key) || !meta[agent_checkpoint_key].is_object())
        throw CheckpointError(pre + "not a PersistAgent checkpoint (its metadata has no '" +
                              std::string(agent_checkpoint_key) + "' object)");
    const auto& file = meta[agent_checkpoint_key];
    if (file.value("kind", std::string()) != agent_checkpoint_kind)
        throw CheckpointError(pre + "not a PersistAgent checkpoint (kind " + detail::json_brief(file.value("kind", nlohmann::json())) + ")");
    if (file.value("version", std::int64_t(-1)) != agent_checkpoint_version)
        throw CheckpointError(pre + "agent state layout version " + detail::json_brief(file.value("version", nlohmann::json())) +
                              ", this build reads version " + std::to_string(agent_checkpoint_version));
    // The most telling differences first (a float agent's curriculum constants differ from a
    // double agent's too, but "scalar" is the reason).
    std::string fv, hv, where;
    for (const char* key : {"scalar", "dims", "env_state", "options", "curriculum"}) {
        if (!here.contains(key)) continue;
        if (!file.contains(key)) {
            where = key;
            fv = "absent";
            hv = detail::json_brief(here[key]);
            break;
        }
        where = detail::first_difference(file[key], here[key], key, fv, hv);
        if (!where.empty()) break;
    }
    if (where.empty()) where = detail::first_difference(file, here, "", fv, hv);
    if (!where.empty())
        throw CheckpointError(pre + "written by a different agent: " + where + " is " + fv + " in the file, " + hv +
                              " in this agent (build the agent with the same parts, options and curriculum "
                              "before loading)");
}

// ---------------------------------------------------------------------------------------------
// Periodic checkpoints in a directory
// ---------------------------------------------------------------------------------------------

/// File name of the checkpoint taken after `step` environment steps: "agent-<step, 12 digits>.ckpt"
/// (zero-padded, so names sort by step).
inline std::string checkpoint_file_name(std::int64_t step) {
    if (step < 0) throw ConfigError("checkpoint_file_name: step must be >= 0, got " + std::to_string(step));
    char buf[64];
    std::snprintf(buf, sizeof(buf), "agent-%012lld.ckpt", static_cast<long long>(step));
    return buf;
}

/// The step encoded in a checkpoint_file_name, or nothing for any other name.
inline std::optional<std::int64_t> checkpoint_step_of(const std::filesystem::path& p) {
    const std::string n = p.filename().string();
    const std::string head = "agent-", tail = ".ckpt";
    if (n.size() <= head.size() + tail.size() || n.rfind(head, 0) != 0 ||
        n.compare(n.size() - tail.size(), tail.size(), tail) != 0)
        return std::nullopt;
    const std::string digits = n.substr(head.size(), n.size() - head.size() - tail.size());
    if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    return static_cast<std::int64_t>(std::stoll(digits));
}

/// Agent checkpoints (checkpoint_file_name) in `dir`, oldest first. IoError when `dir` exists
/// but cannot be read; empty when it does not exist.
inline std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::vector<std::pair<std::int64_t, fs::path>> found;
    std::error_code ec;
    if (!fs::exists(dir, ec)) return {};
    fs::directory_iterator it(dir, ec);
    if (ec) throw IoError("list_checkpoints: cannot read directory '" + dir.string() + "': " + ec.message());
    for (const auto& e : it) {
        if (!e.is_regular_file(ec)) continue;
        if (const auto s = checkpoint_step_of(e.path())) found.emplace_back(*s, e.path());
    }
    std::sort(found.begin(), found.end());
    std::vector<fs::path> out;
    out.reserve(found.size());
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
}

/// The newest agent checkpoint in `dir` (highest step), or nothing.
inline std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& dir) {
    auto all = list_checkpoints(dir);
    if (all.empty()) return std::nullopt;
    return all.back();
}

/// Saves an agent every `every` steps into `dir` and keeps the newest `keep` files (the
/// config's `checkpoint:` section). `every` = 0 never saves on its own; `save_now` always can.
/// @code
///   PeriodicCheckpoints ck(c.checkpoint.dir, c.checkpoint.every, c.checkpoint.keep);
///   for (std::int64_t i = 0; i < steps; ++i) { agent.step(); ck.maybe_save(agent); }
/// @endcode
class PeriodicCheckpoints {
public:
    PeriodicCheckpoints(std::filesystem::path dir, std::int64_t every, std::int64_t keep)
        : dir_(std::move(dir)), every_(every), keep_(keep) {
        if (dir_.empty()) throw ConfigError("PeriodicCheckpoints: dir must not be empty");
        if (every_ < 0) throw ConfigError("PeriodicCheckpoints: every = " + std::to_string(every_) + ": expected >= 0 (0: never)");
        if (keep_ < 1) throw ConfigError("PeriodicCheckpoints: keep = " + std::to_string(keep_) + ": expected >= 1");
    }

    const std::filesystem::path& dir() const { return dir_; }
    std::int64_t every() const { return every_; }
    std::int64_t keep() const { return keep_; }

    /// Save when agent.total_steps() is a positive multiple of `every` (and that step was not
    /// saved yet). Returns the path written, if any. With an environment that is not
    /// Stateful the agent can only be saved between episodes: the save then waits for the
    /// next episode boundary.
    template <class Agent>
    std::optional<std::filesystem::path> maybe_save(Agent& agent, const nlohmann::json& user = {}) {
        const std::int64_t s = agent.total_steps();
        if (every_ <= 0 || s <= 0) return std::nullopt;
        // First call (also after a resume): the steps before this one count as handled.
        if (last_bucket_ < 0) last_bucket_ = (s - 1) / every_;
        if (s / every_ > last_bucket_) {
            if (!agent.can_save()) return std::nullopt;
            last_bucket_ = s / every_;
            return save_now(agent, user);
        }
        return std::nullopt;
    }

    /// Save now (creating `dir` if needed), then delete all but the newest `keep` checkpoints.
    template <class Agent>
    std::filesystem::path save_now(Agent& agent, const nlohmann::json& user = {}) {
        std::error_code ec;
        std::filesystem::create_directories(dir_, ec);
        if (ec) throw IoError("PeriodicCheckpoints: cannot create directory '" + dir_.string() + "': " + ec.message());
        const auto path = dir_ / checkpoint_file_name(agent.total_steps());
        agent.save(path, user);
        if (every_ > 0) last_bucket_ = agent.total_steps() / every_;
        auto all = list_checkpoints(dir_);
        for (std::size_t i = 0; i + static_cast<std::size_t>(keep_) < all.size(); ++i) std::filesystem::remove(all[i], ec);
        return path;
    }

private:
    std::filesystem::path dir_;
    std::int64_t every_, keep_;
    std::int64_t last_bucket_ = -1;  // every_-buckets of steps already saved; -1: not yet known
};

}  // namespace persist::train
