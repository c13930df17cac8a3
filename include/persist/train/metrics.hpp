#pragma once
/// @file metrics.hpp
/// The seed's metrics (section 10), per episode and for a whole run, and their JSON-lines
/// writer (nlohmann_json). Definitions (docs/train.md, "Metrics"), for an episode of L steps
/// with states x_1 .. x_L reached by the steps and their margins m_k(x_t):
///
/// - survival steps L; time_to_violation = L when the episode ended because a constraint of
///   the (current) viability set was violated, null otherwise (survived to the time limit, or
///   ended for another reason);
/// - violated_constraint / violated_variables: the first violated constraint at x_L and the
///   variables it involves;
/// - constraint satisfaction rate of constraint k: #{t : m_k(x_t) satisfies k's rule} / L; per
///   variable j: #{t : every single-variable constraint on j holds at x_t} / L;
/// - recovery rate: a state is near-boundary when 0 < min_k m_k(x_t) < epsilon and in the safe
///   core when min_k m_k(x_t) >= epsilon. A near-boundary state at t is recovered when some
///   x_{t'} with t < t' <= t + h is in the core. Rate = recovered / (near-boundary states whose
///   window was observed): windows cut by a termination count as failures, windows cut by a
///   truncation (time limit) are censored (left out). null when there were none;
/// - policy entropy: mean of the policy's per-update entropy estimate (SAC: -mean log pi on
///   the batch) over the updates made during the episode; null without updates or when the
///   policy does not report one;
/// - mean_r_intr, mean_r_homeo: means over the episode's steps; return_task, return_total:
///   undiscounted sums of r_task and r_total;
/// - shield_trigger_rate: fraction of steps whose action the shield replaced (projected).
///
/// Recording a step never allocates (every buffer is sized at construction).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"
#include "persist/viability/constraints.hpp"

namespace persist::train {

/// Metrics of one finished episode.
struct EpisodeRecord {
    std::int64_t episode = 0;     ///< 0-based index
    std::int64_t start_step = 0;  ///< global environment steps before the episode
    std::int64_t length = 0;      ///< survival steps L
    bool terminated = false, truncated = false;
    bool violated = false;               ///< terminated with a constraint violated at x_L
    std::int64_t violated_constraint = -1;
    std::vector<std::uint8_t> violated_variables;  ///< per variable: involved in the violation
    double return_task = 0, return_total = 0;
    double mean_r_homeo = 0, mean_r_intr = 0;
    std::vector<double> constraint_satisfaction;  ///< per constraint, in [0, 1]
    std::vector<double> variable_satisfaction;    ///< per variable, in [0, 1]
    std::int64_t near_boundary = 0, recovered = 0, censored = 0;
    double recovery_rate = std::numeric_limits<double>::quiet_NaN();
    std::int64_t updates = 0;
    double policy_entropy = std::numeric_limits<double>::quiet_NaN();
    double shield_trigger_rate = 0;
    double lambda_homeo = 0, lambda_intr = 0, curriculum_progress = 0;
};

/// Totals over a run.
struct RunSummary {
    std::int64_t episodes = 0, steps = 0, violations = 0, survived = 0;
    std::vector<std::int64_t> violations_per_variable, violations_per_constraint;
    std::vector<double> constraint_satisfaction, variable_satisfaction;  ///< over all steps
    double mean_length = 0, mean_return_task = 0, mean_return_total = 0, mean_r_intr = 0;
    std::int64_t near_boundary = 0, recovered = 0;
    double recovery_rate = std::numeric_limits<double>::quiet_NaN();
    double shield_trigger_rate = 0;
    double mean_policy_entropy = std::numeric_limits<double>::quiet_NaN();
    std::int64_t updates = 0;
};

/// Accumulates the metrics of the current episode and of the run.
/// @tparam T scalar of states and margins.
template <class T>
class MetricsTracker {
public:
    using Set = viability::ConstraintSet<T>;

    /// `set` gives the sizes and names (constraint texts as first given, variable names);
    /// epsilon > 0 and horizon h >= 1 define the recovery rate.
    MetricsTracker(const Set& set, double epsilon, std::int64_t horizon)
        : eps_(static_cast<T>(epsilon)), h_(horizon), K_(set.num_constraints()), D_(set.dim()) {
        if (!(std::isfinite(epsilon) && epsilon > 0))
            throw ConfigError("MetricsTracker: recovery epsilon must be finite and > 0, got " + std::to_string(epsilon));
        if (horizon < 1)
            throw ConfigError("MetricsTracker: recovery horizon must be >= 1, got " + std::to_string(horizon));
        for (Index k = 0; k < K_; ++k) constraint_names_.push_back(set.text(k));
        variable_names_ = set.variable_names();
        sat_k_.assign(static_cast<std::size_t>(K_), 0);
        sat_j_.assign(static_cast<std::size_t>(D_), 0);
        pending_.assign(static_cast<std::size_t>(h_ + 1), 0);
        rec_.violated_variables.assign(static_cast<std::size_t>(D_), 0);
        rec_.constraint_satisfaction.assign(static_cast<std::size_t>(K_), 0.0);
        rec_.variable_satisfaction.assign(static_cast<std::size_t>(D_), 0.0);
        sum_.violations_per_variable.assign(static_cast<std::size_t>(D_), 0);
        sum_.violations_per_constraint.assign(static_cast<std::size_t>(K_), 0);
        tot_sat_k_.assign(static_cast<std::size_t>(K_), 0);
        tot_sat_j_.assign(static_cast<std::size_t>(D_), 0);
    }

    const std::vector<std::string>& constraint_names() const { return constraint_names_; }
    const std::vector<std::string>& variable_names() const { return variable_names_; }
    double epsilon() const { return static_cast<double>(eps_); }
    std::int64_t horizon() const { return h_; }

    void begin_episode(std::int64_t episode, std::int64_t global_step) {
        rec_.episode = episode;
        rec_.start_step = global_step;
        len_ = 0;
        std::fill(sat_k_.begin(), sat_k_.end(), 0);
        std::fill(sat_j_.begin(), sat_j_.end(), 0);
        ret_task_ = ret_total_ = sum_homeo_ = sum_intr_ = 0;
        near_ = recovered_ = 0;
        p_head_ = p_size_ = 0;
        updates_ = 0;
        entropy_sum_ = 0;
        entropy_n_ = 0;
        triggers_ = 0;
        in_episode_ = true;
    }

    /// One step that reached x_next with per-constraint `margins` (num_constraints entries).
    void record_step(const Set& set, VecCRef<T> x_next, VecCRef<T> margins, T r_task, T r_homeo, T r_intr,
                     T r_total, bool shield_projected) {
        ++len_;
        T mmin = std::numeric_limits<T>::infinity();
        for (Index k = 0; k < K_; ++k) {
            const T m = margins[k];
            mmin = std::min(mmin, m);
            if (set.satisfied(k, m)) ++sat_k_[static_cast<std::size_t>(k)];
        }
        for (Index j = 0; j < D_; ++j)
            if (set.variable_satisfied(j, x_next)) ++sat_j_[static_cast<std::size_t>(j)];
        ret_task_ += double(r_task);
        ret_total_ += double(r_total);
        sum_homeo_ += double(r_homeo);
        sum_intr_ += double(r_intr);
        if (shield_projected) ++triggers_;
        // Recovery: expire windows older than h (failures), then a core state recovers the rest.
        while (p_size_ > 0 && len_ - pending_[p_head_] > h_) pop();
        if (mmin >= eps_) {
            recovered_ += p_size_;
            p_size_ = 0;
        } else if (mmin > T(0)) {
            ++near_;
            push(len_);
        }
    }

    /// The policy made an update during this episode; `entropy` may be NaN (not reported).
    void record_update(double entropy) {
        ++updates_;
        if (std::isfinite(entropy)) {
            entropy_sum_ += entropy;
            ++entropy_n_;
        }
    }

    /// Close the episode; x_last is the final internal state (for the violation). The record
    /// stays valid until the next end_episode.
    const EpisodeRecord& end_episode(const Set& set, VecCRef<T> x_last, bool terminated, bool truncated,
                                     double lambda_homeo = 0, double lambda_intr = 0, double progress = 0) {
        rec_.length = len_;
        rec_.terminated = terminated;
        rec_.truncated = truncated;
        std::fill(rec_.violated_variables.begin(), rec_.violated_variables.end(), std::uint8_t(0));
        rec_.violated_constraint = -1;
        rec_.violated = false;
        if (terminated && len_ > 0) {
            const Index k = set.first_violated(x_last);
            if (k >= 0) {
                rec_.violated = true;
                rec_.violated_constraint = k;
                const auto& a = set.constraint(k).a;
                for (Index j = 0; j < D_; ++j)
                    if (a[j] != T(0)) rec_.violated_variables[static_cast<std::size_t>(j)] = 1;
            }
        }
        const double L = len_ > 0 ? double(len_) : 1.0;
        for (Index k = 0; k < K_; ++k)
            rec_.constraint_satisfaction[static_cast<std::size_t>(k)] = double(sat_k_[static_cast<std::size_t>(k)]) / L;
        for (Index j = 0; j < D_; ++j)
            rec_.variable_satisfaction[static_cast<std::size_t>(j)] = double(sat_j_[static_cast<std::size_t>(j)]) / L;
        rec_.return_task = ret_task_;
        rec_.return_total = ret_total_;
        rec_.mean_r_homeo = len_ > 0 ? sum_homeo_ / L : 0.0;
        rec_.mean_r_intr = len_ > 0 ? sum_intr_ / L : 0.0;
        // Open windows: failures after a termination, censored after a truncation / other end.
        const std::int64_t open = p_size_;
        std::int64_t failed_open = 0, censored = 0;
        if (terminated) failed_open = open; else censored = open;
        (void)failed_open;
        rec_.near_boundary = near_;
        rec_.recovered = recovered_;
        rec_.censored = censored;
        const std::int64_t denom = near_ - censored;
        rec_.recovery_rate = denom > 0 ? double(recovered_) / double(denom) : std::numeric_limits<double>::quiet_NaN();
        rec_.updates = updates_;
        rec_.policy_entropy = entropy_n_ > 0 ? entropy_sum_ / double(entropy_n_) : std::numeric_limits<double>::quiet_NaN();
        rec_.shield_trigger_rate = len_ > 0 ? double(triggers_) / L : 0.0;
        rec_.lambda_homeo = lambda_homeo;
        rec_.lambda_intr = lambda_intr;
        rec_.curriculum_progress = progress;
        // Run totals.
        auto& s = sum_;
        ++s.episodes;
        s.steps += len_;
        if (rec_.violated) {
            ++s.violations;
            ++s.violations_per_constraint[static_cast<std::size_t>(rec_.violated_constraint)];
            for (Index j = 0; j < D_; ++j) s.violations_per_variable[static_cast<std::size_t>(j)] += rec_.violated_variables[static_cast<std::size_t>(j)];
        }
        if (truncated && !terminated) ++s.survived;
        for (Index k = 0; k < K_; ++k) tot_sat_k_[static_cast<std::size_t>(k)] += sat_k_[static_cast<std::size_t>(k)];
        for (Index j = 0; j < D_; ++j) tot_sat_j_[static_cast<std::size_t>(j)] += sat_j_[static_cast<std::size_t>(j)];
        tot_ret_task_ += ret_task_;
        tot_ret_total_ += ret_total_;
        tot_intr_ += sum_intr_;
        s.near_boundary += near_ - censored;
        s.recovered += recovered_;
        tot_triggers_ += triggers_;
        s.updates += updates_;
        tot_entropy_sum_ += entropy_sum_;
        tot_entropy_n_ += entropy_n_;
        in_episode_ = false;
        return rec_;
    }

    bool in_episode() const { return in_episode_ != 0; }
    std::int64_t episode_length() const { return len_; }
    const EpisodeRecord& last_episode() const { return rec_; }

    /// Totals over the finished episodes.
    RunSummary summary() const {
        RunSummary s = sum_;
        const double E = s.episodes > 0 ? double(s.episodes) : 1.0;
        const double N = s.steps > 0 ? double(s.steps) : 1.0;
        s.mean_length = double(s.steps) / E;
        s.mean_return_task = tot_ret_task_ / E;
        s.mean_return_total = tot_ret_total_ / E;
        s.mean_r_intr = tot_intr_ / N;
        s.constraint_satisfaction.resize(static_cast<std::size_t>(K_));
        s.variable_satisfaction.resize(static_cast<std::size_t>(D_));
        for (Index k = 0; k < K_; ++k) s.constraint_satisfaction[static_cast<std::size_t>(k)] = double(tot_sat_k_[static_cast<std::size_t>(k)]) / N;
        for (Index j = 0; j < D_; ++j) s.variable_satisfaction[static_cast<std::size_t>(j)] = double(tot_sat_j_[static_cast<std::size_t>(j)]) / N;
        s.recovery_rate = s.near_boundary > 0 ? double(s.recovered) / double(s.near_boundary)
                                              : std::numeric_limits<double>::quiet_NaN();
        s.shield_trigger_rate = double(tot_triggers_) / N;
        s.mean_policy_entropy = tot_entropy_n_ > 0 ? tot_entropy_sum_ / double(tot_entropy_n_)
                                                   : std::numeric_limits<double>::quiet_NaN();
        return s;
    }

    /// State protocol (core/state.hpp): what continuing the run needs, so that a resumed
    /// agent writes the same episode records and summary as an uninterrupted one: the running
    /// episode's counters (length, satisfaction counts, sums, open recovery windows, updates,
    /// entropy, shield triggers, its index and start step) and the run totals. Names and
    /// epsilon / h are configuration (a different h changes the shape of "pending"). The
    /// previous finished episode's record (last_episode()) is output, not state: after a load
    /// only its episode and start_step fields are restored until the running episode ends.
    template <class V>
    void visit_state(V&& v) {
        const auto n = [](const auto& vec) { return static_cast<std::int64_t>(vec.size()); };
        v(state_tensor("episode", &rec_.episode, {}));
        v(state_tensor("start_step", &rec_.start_step, {}));
        v(state_tensor("in_episode", &in_episode_, {}));
        v(state_tensor("length", &len_, {}));
        v(state_tensor("satisfied_per_constraint", sat_k_.data(), {n(sat_k_)}));
        v(state_tensor("satisfied_per_variable", sat_j_.data(), {n(sat_j_)}));
        v(state_tensor("return_task", &ret_task_, {}));
        v(state_tensor("return_total", &ret_total_, {}));
        v(state_tensor("sum_r_homeo", &sum_homeo_, {}));
        v(state_tensor("sum_r_intr", &sum_intr_, {}));
        v(state_tensor("near_boundary", &near_, {}));
        v(state_tensor("recovered", &recovered_, {}));
        v(state_tensor("pending", pending_.data(), {n(pending_)}));
        v(state_tensor("pending_head", &p_head_, {}));
        v(state_tensor("pending_size", &p_size_, {}));
        v(state_tensor("updates", &updates_, {}));
        v(state_tensor("entropy_sum", &entropy_sum_, {}));
        v(state_tensor("entropy_count", &entropy_n_, {}));
        v(state_tensor("shield_triggers", &triggers_, {}));
        // Run totals.
        v(state_tensor("total.episodes", &sum_.episodes, {}));
        v(state_tensor("total.steps", &sum_.steps, {}));
        v(state_tensor("total.violations", &sum_.violations, {}));
        v(state_tensor("total.survived", &sum_.survived, {}));
        v(state_tensor("total.violations_per_variable", sum_.violations_per_variable.data(),
                       {n(sum_.violations_per_variable)}));
        v(state_tensor("total.violations_per_constraint", sum_.violations_per_constraint.data(),
                       {n(sum_.violations_per_constraint)}));
        v(state_tensor("total.near_boundary", &sum_.near_boundary, {}));
        v(state_tensor("total.recovered", &sum_.recovered, {}));
        v(state_tensor("total.updates", &sum_.updates, {}));
        v(state_tensor("total.satisfied_per_constraint", tot_sat_k_.data(), {n(tot_sat_k_)}));
        v(state_tensor("total.satisfied_per_variable", tot_sat_j_.data(), {n(tot_sat_j_)}));
        v(state_tensor("total.return_task", &tot_ret_task_, {}));
        v(state_tensor("total.return_total", &tot_ret_total_, {}));
        v(state_tensor("total.sum_r_intr", &tot_intr_, {}));
        v(state_tensor("total.shield_triggers", &tot_triggers_, {}));
        v(state_tensor("total.entropy_sum", &tot_entropy_sum_, {}));
        v(state_tensor("total.entropy_count", &tot_entropy_n_, {}));
    }

private:
    void push(std::int64_t t) {
        // At most h windows are open at once (each lasts h steps), so the ring never overflows.
        const std::size_t cap = pending_.size();
        pending_[static_cast<std::size_t>((p_head_ + static_cast<std::uint64_t>(p_size_)) % cap)] = t;
        ++p_size_;
    }
    void pop() {
        p_head_ = (p_head_ + 1) % pending_.size();
        --p_size_;
    }

    T eps_;
    std::int64_t h_;
    Index K_, D_;
    std::vector<std::string> constraint_names_, variable_names_;
    EpisodeRecord rec_;
    RunSummary sum_;
    std::int64_t len_ = 0;
    std::vector<std::int64_t> sat_k_, sat_j_, tot_sat_k_, tot_sat_j_;
    double ret_task_ = 0, ret_total_ = 0, sum_homeo_ = 0, sum_intr_ = 0;
    double tot_ret_task_ = 0, tot_ret_total_ = 0, tot_intr_ = 0;
    std::int64_t near_ = 0, recovered_ = 0;
    std::vector<std::int64_t> pending_;
    std::uint64_t p_head_ = 0;  // u64 / i64 counters: checkpoint dtypes (visit_state)
    std::int64_t p_size_ = 0;
    std::int64_t updates_ = 0, triggers_ = 0, tot_triggers_ = 0;
    double entropy_sum_ = 0, tot_entropy_sum_ = 0;
    std::int64_t entropy_n_ = 0, tot_entropy_n_ = 0;
    std::uint64_t in_episode_ = 0;
};

namespace detail {
inline nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
}  // namespace detail

/// An episode as one JSON object ("type": "episode"), keyed by constraint / variable names.
inline nlohmann::json to_json(const EpisodeRecord& r, const std::vector<std::string>& constraint_names,
                              const std::vector<std::string>& variable_names) {
    using nlohmann::json;
    json j;
    j["type"] = "episode";
    j["episode"] = r.episode;
    j["start_step"] = r.start_step;
    j["survival_steps"] = r.length;
    j["terminated"] = r.terminated;
    j["truncated"] = r.truncated;
    j["time_to_violation"] = r.violated ? json(r.length) : json(nullptr);
    j["violated_constraint"] = r.violated ? json(constraint_names.at(static_cast<std::size_t>(r.violated_constraint))) : json(nullptr);
    json vv = json::array();
    for (std::size_t i = 0; i < r.violated_variables.size(); ++i)
        if (r.violated_variables[i]) vv.push_back(variable_names.at(i));
    j["violated_variables"] = vv;
    json cs = json::object(), vs = json::object();
    for (std::size_t k = 0; k < r.constraint_satisfaction.size(); ++k) cs[constraint_names.at(k)] = r.constraint_satisfaction[k];
    for (std::size_t v = 0; v < r.variable_satisfaction.size(); ++v) vs[variable_names.at(v)] = r.variable_satisfaction[v];
    j["constraint_satisfaction"] = cs;
    j["variable_satisfaction"] = vs;
    j["recovery_rate"] = detail::num_or_null(r.recovery_rate);
    j["near_boundary_states"] = r.near_boundary;
    j["recovered"] = r.recovered;
    j["policy_entropy"] = detail::num_or_null(r.policy_entropy);
    j["updates"] = r.updates;
    j["mean_r_intr"] = r.mean_r_intr;
    j["mean_r_homeo"] = r.mean_r_homeo;
    j["return_task"] = r.return_task;
    j["return_total"] = r.return_total;
    j["shield_trigger_rate"] = r.shield_trigger_rate;
    j["lambda_homeo"] = r.lambda_homeo;
    j["lambda_intr"] = r.lambda_intr;
    j["curriculum_progress"] = r.curriculum_progress;
    return j;
}

/// The run summary as one JSON object ("type": "summary").
inline nlohmann::json to_json(const RunSummary& s, const std::vector<std::string>& constraint_names,
                              const std::vector<std::string>& variable_names) {
    using nlohmann::json;
    json j;
    j["type"] = "summary";
    j["episodes"] = s.episodes;
    j["steps"] = s.steps;
    j["mean_survival_steps"] = s.mean_length;
    j["violations"] = s.violations;
    j["survived_to_time_limit"] = s.survived;
    json vpv = json::object(), vpc = json::object(), cs = json::object(), vs = json::object();
    for (std::size_t i = 0; i < s.violations_per_variable.size(); ++i) vpv[variable_names.at(i)] = s.violations_per_variable[i];
    for (std::size_t k = 0; k < s.violations_per_constraint.size(); ++k) vpc[constraint_names.at(k)] = s.violations_per_constraint[k];
    for (std::size_t k = 0; k < s.constraint_satisfaction.size(); ++k) cs[constraint_names.at(k)] = s.constraint_satisfaction[k];
    for (std::size_t i = 0; i < s.variable_satisfaction.size(); ++i) vs[variable_names.at(i)] = s.variable_satisfaction[i];
    j["violations_per_variable"] = vpv;
    j["violations_per_constraint"] = vpc;
    j["constraint_satisfaction"] = cs;
    j["variable_satisfaction"] = vs;
    j["recovery_rate"] = detail::num_or_null(s.recovery_rate);
    j["near_boundary_states"] = s.near_boundary;
    j["recovered"] = s.recovered;
    j["mean_return_task"] = s.mean_return_task;
    j["mean_return_total"] = s.mean_return_total;
    j["mean_r_intr"] = s.mean_r_intr;
    j["shield_trigger_rate"] = s.shield_trigger_rate;
    j["mean_policy_entropy"] = detail::num_or_null(s.mean_policy_entropy);
    j["updates"] = s.updates;
    return j;
}

/// Appends JSON lines to a file (truncated on open); each line flushed. IoError when the file
/// cannot be opened or written.
///
/// Resuming a run (`MetricsWriter::resume(path, step)`): the file of the interrupted run keeps
/// the "episode" lines of episodes that ended at or before `step` (the checkpoint's total
/// steps: the resumed run replays everything after it) and loses its other lines (episodes
/// after the checkpoint, summaries, evaluations: the resumed run writes its own); new lines
/// are appended. A missing file starts empty. A line that is not a JSON object, or an episode
/// line without integer start_step / survival_steps, is an IoError naming file and line, and
/// the file is left as it was.
class MetricsWriter {
public:
    explicit MetricsWriter(const std::filesystem::path& path) : path_(path), out_(path, std::ios::trunc) {
        if (!out_) throw IoError("MetricsWriter: cannot open \"" + path.string() + "\" for writing");
    }

    /// The writer of a run resumed at total step `step` (see the class comment). Returns the
    /// number of episode lines kept through `kept` when given.
    static MetricsWriter resume(const std::filesystem::path& path, std::int64_t step, std::int64_t* kept = nullptr) {
        std::vector<std::string> keep;
        if (std::filesystem::exists(path)) {
            std::ifstream in(path);
            if (!in) throw IoError("MetricsWriter::resume: cannot open \"" + path.string() + "\" for reading");
            std::string line;
            std::int64_t no = 0;
            while (std::getline(in, line)) {
                ++no;
                if (line.empty()) continue;
                const auto where = [&] { return path.string() + ":" + std::to_string(no) + ": "; };
                const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
                if (j.is_discarded() || !j.is_object())
                    throw IoError("MetricsWriter::resume: " + where() + "not a JSON object (a metrics file holds one per line)");
                if (!j.contains("type") || j["type"] != "episode") continue;
                if (!j.contains("start_step") || !j["start_step"].is_number_integer() || !j.contains("survival_steps") ||
                    !j["survival_steps"].is_number_integer())
                    throw IoError("MetricsWriter::resume: " + where() +
                                  "episode line without integer start_step and survival_steps");
                if (j["start_step"].get<std::int64_t>() + j["survival_steps"].get<std::int64_t>() <= step)
                    keep.push_back(line);
            }
            if (in.bad()) throw IoError("MetricsWriter::resume: read error in \"" + path.string() + "\"");
        }
        if (kept) *kept = static_cast<std::int64_t>(keep.size());
        // The kept lines replace the file atomically (a crash leaves the old file or the new).
        const std::filesystem::path tmp = path.string() + ".resume.tmp";
        {
            std::ofstream o(tmp, std::ios::trunc);
            for (const auto& l : keep) o << l << '\n';
            o.flush();
            if (!o) throw IoError("MetricsWriter::resume: cannot write \"" + tmp.string() + "\"");
        }
        std::error_code ec;
        std::filesystem::rename(tmp, path, ec);
        if (ec) throw IoError("MetricsWriter::resume: cannot replace \"" + path.string() + "\": " + ec.message());
        return MetricsWriter(path, std::ios::app);
    }
    void write(const nlohmann::json& j) {
        out_ << j.dump() << '\n';
        out_.flush();
        if (!out_) throw IoError("MetricsWriter: write to \"" + path_.string() + "\" failed");
    }
    const std::filesystem::path& path() const { return path_; }

private:
    MetricsWriter(const std::filesystem::path& path, std::ios::openmode mode) : path_(path), out_(path, mode) {
        if (!out_) throw IoError("MetricsWriter: cannot open \"" + path.string() + "\" for appending");
    }
    std::filesystem::path path_;
    std::ofstream out_;
};

}  // namespace persist::train
