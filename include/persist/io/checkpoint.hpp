#pragma once
/// @file checkpoint.hpp
/// Checkpoint files: save and restore any object that follows the state protocol
/// (core/state.hpp), alone or several under prefixes in one file.
///
/// Guarantees (docs/checkpoint.md has the byte layout and every error message):
/// - Saving is atomic: the file is written to a unique temporary in the destination directory,
///   fsync'ed, renamed over the destination and the directory fsync'ed. A failed save removes
///   its temporary and leaves any previous checkpoint untouched.
/// - Loading is transactional: the whole file is read and verified (magic, version, sizes,
///   checksums, header) and every entry is matched against the object (names, dtypes, shapes)
///   before a single byte of the object is written. On any error the object is unchanged.
/// - Values round-trip bitwise (NaN payloads, -0, denormals, int64/uint64 extremes).
/// - Same object + same metadata -> byte-identical file.
///
/// POSIX only (open/fsync/rename); the payload is little-endian and the host must be too.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/io/crc32c.hpp"

/// Library version recorded in every checkpoint header ("library_version").
#ifndef PERSIST_VERSION_STRING
#define PERSIST_VERSION_STRING "0.1.0"
#endif

namespace persist::io {

static_assert(std::endian::native == std::endian::little,
              "PERSIST checkpoints store raw little-endian arrays; big-endian hosts are not supported");

/// Format constants (docs/checkpoint.md, "Byte layout").
inline constexpr std::array<char, 12> checkpoint_magic{'P', 'E', 'R', 'S', 'I', 'S',
                                                       'T', 'C', 'K', 'P', 'T', '\0'};
inline constexpr std::uint32_t checkpoint_format_version = 1;
inline constexpr std::size_t checkpoint_preamble_size = 40;
inline constexpr std::size_t checkpoint_trailer_size = 4;
inline constexpr std::size_t checkpoint_alignment = 8;

/// What to do with file entries that no object asked for.
enum class ExtraEntries {
    error,   ///< default: the file must hold exactly the objects' state
    ignore,  ///< load a subset (e.g. only the actor of a full agent checkpoint)
};

/// One entry of a checkpoint header.
struct EntryInfo {
    std::string name;
    DType dtype = DType::f32;
    int rank = 0;
    std::array<std::int64_t, 4> shape{1, 1, 1, 1};
    std::uint64_t offset = 0;  ///< byte offset from the start of the payload (multiple of 8)
    std::uint64_t nbytes = 0;

    std::string shape_string() const {
        std::string s = "[";
        for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(shape[static_cast<std::size_t>(i)]);
        return s + "]";
    }
};

/// The parsed header of a checkpoint, for tooling (`inspect_checkpoint`).
struct CheckpointInfo {
    std::uint32_t format_version = 0;
    std::string library_version;
    std::uint64_t header_size = 0;   ///< bytes of JSON header
    std::uint64_t payload_offset = 0;
    std::uint64_t payload_size = 0;
    std::uint64_t file_size = 0;
    std::uint32_t checksum = 0;      ///< CRC-32C stored in the trailer
    bool checksum_verified = false;
    std::vector<EntryInfo> entries;  ///< in payload order
    nlohmann::json metadata;

    /// The entry called `name`, or nullptr.
    const EntryInfo* find(std::string_view name) const {
        for (const auto& e : entries)
            if (e.name == name) return &e;
        return nullptr;
    }
};

namespace detail {

[[noreturn]] inline void ckpt_fail(const std::filesystem::path& path, const std::string& what) {
    throw CheckpointError("checkpoint '" + path.string() + "': " + what);
}

inline std::string errno_text(int err) { return std::strerror(err); }

inline constexpr std::uint64_t align8(std::uint64_t n) {
    return (n + (checkpoint_alignment - 1)) & ~static_cast<std::uint64_t>(checkpoint_alignment - 1);
}

inline void put_u32(unsigned char* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
inline void put_u64(unsigned char* p, std::uint64_t v) { std::memcpy(p, &v, 8); }
inline std::uint32_t get_u32(const unsigned char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline std::uint64_t get_u64(const unsigned char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

inline bool parse_dtype(const std::string& s, DType& out) {
    for (DType d : {DType::f32, DType::f64, DType::i64, DType::u64})
        if (s == dtype_name(d)) {
            out = d;
            return true;
        }
    return false;
}

/// A type-erased "append my TensorRefs (with this prefix) to a list", collected at save/load
/// time so objects may reallocate between `add` and `save`/`load`.
using Collector = std::function<void(std::vector<TensorRef>&)>;

template <class Obj>
Collector make_collector(Obj& obj, std::string prefix) {
    static_assert(Stateful<Obj>,
                  "persist::io checkpoints need `template <class V> void visit_state(V&& v)` calling "
                  "v(TensorRef) per tensor (see core/state.hpp and docs/checkpoint.md)");
    return [&obj, prefix = std::move(prefix)](std::vector<TensorRef>& out) {
        obj.visit_state([&](TensorRef t) {
            if (!prefix.empty()) t.name = prefix + "." + t.name;
            out.push_back(std::move(t));
        });
    };
}

inline std::vector<TensorRef> collect_all(const std::vector<Collector>& collectors) {
    std::vector<TensorRef> refs;
    for (const auto& c : collectors) c(refs);
    return refs;
}

/// Object-side sanity (both directions): non-empty unique names, rank <= 4, non-negative dims,
/// a data pointer for every non-empty tensor.
inline void check_refs(const std::filesystem::path& path, const std::vector<TensorRef>& refs,
                       const char* action) {
    std::unordered_set<std::string_view> seen;
    seen.reserve(refs.size());
    const std::string pre = std::string("cannot ") + action + ": ";
    for (const auto& t : refs) {
        if (t.name.empty()) ckpt_fail(path, pre + "the object has a state tensor with an empty name");
        if (!seen.insert(t.name).second)
            ckpt_fail(path, pre + "the object has two state tensors named '" + t.name +
                                "' (names must be unique; nest children with visit_nested)");
        if (t.dtype != DType::f32 && t.dtype != DType::f64 && t.dtype != DType::i64 && t.dtype != DType::u64)
            ckpt_fail(path, pre + "state tensor '" + t.name + "' has an invalid dtype code " +
                                std::to_string(static_cast<int>(t.dtype)));
        if (t.rank < 0 || t.rank > 4)
            ckpt_fail(path, pre + "state tensor '" + t.name + "' has rank " + std::to_string(t.rank) +
                                ", expected 0..4");
        std::uint64_t numel = 1;
        for (int i = 0; i < t.rank; ++i) {
            const auto d = t.shape[static_cast<std::size_t>(i)];
            if (d < 0)
                ckpt_fail(path, pre + "state tensor '" + t.name + "' has negative shape " + t.shape_string());
            if (d != 0 && numel > std::numeric_limits<std::uint64_t>::max() / 8 / static_cast<std::uint64_t>(d))
                ckpt_fail(path, pre + "state tensor '" + t.name + "' is too large " + t.shape_string());
            numel *= static_cast<std::uint64_t>(d);
        }
        if (numel > 0 && t.data == nullptr)
            ckpt_fail(path, pre + "state tensor '" + t.name + "' has shape " + t.shape_string() +
                                " but a null data pointer");
    }
}

/// Owns a file descriptor; closes it on scope exit unless released.
struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    /// Close and report the error (close can surface delayed write errors, e.g. on NFS).
    int close_checked() {
        const int f = fd;
        fd = -1;
        return ::close(f) == 0 ? 0 : errno;
    }
};

/// Buffered writer that checksums everything it writes (except the trailer itself).
class ChecksumWriter {
public:
    ChecksumWriter(int fd, const std::filesystem::path& dest, const std::filesystem::path& tmp)
        : fd_(fd), dest_(dest), tmp_(tmp) {
        buf_.reserve(cap_);
    }
    void put(const void* data, std::size_t n) {
        crc_ = crc32c(data, n, crc_);
        put_raw(data, n);
    }
    void put_zeros(std::size_t n) {
        static constexpr unsigned char zeros[checkpoint_alignment] = {};
        while (n > 0) {
            const std::size_t k = std::min(n, sizeof(zeros));
            put(zeros, k);
            n -= k;
        }
    }
    void put_raw(const void* data, std::size_t n) {
        const auto* p = static_cast<const unsigned char*>(data);
        if (buf_.size() + n > cap_) flush();
        if (n >= cap_) {
            write_all(p, n);
        } else {
            buf_.insert(buf_.end(), p, p + n);
        }
    }
    void flush() {
        if (!buf_.empty()) write_all(buf_.data(), buf_.size());
        buf_.clear();
    }
    std::uint32_t crc() const { return crc_; }

private:
    void write_all(const unsigned char* p, std::size_t n) {
        while (n > 0) {
            const ::ssize_t w = ::write(fd_, p, std::min<std::size_t>(n, std::size_t{1} << 30));
            if (w < 0) {
                if (errno == EINTR) continue;
                ckpt_fail(dest_, "write to temporary file '" + tmp_.string() + "' failed: " + errno_text(errno));
            }
            p += w;
            n -= static_cast<std::size_t>(w);
        }
    }

    static constexpr std::size_t cap_ = std::size_t{1} << 20;
    int fd_;
    const std::filesystem::path& dest_;
    const std::filesystem::path& tmp_;
    std::vector<unsigned char> buf_;
    std::uint32_t crc_ = 0;
};

/// A name no other writer (thread or process) will pick: pid + process-wide counter + clock.
inline std::filesystem::path temp_path_for(const std::filesystem::path& dest, unsigned attempt) {
    static std::atomic<std::uint64_t> counter{0};
    std::uint64_t x = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                      (counter.fetch_add(1) << 40) ^ attempt;
    x ^= x >> 33;  // splitmix-style finaliser: spread the bits
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    char hex[17];
    for (int i = 15; i >= 0; --i, x >>= 4) hex[i] = "0123456789abcdef"[x & 0xFu];
    hex[16] = '\0';
    // Appended piecewise: `"." + std::string` trips a GCC 12 -Wrestrict false positive.
    std::string name(1, '.');
    name.append(dest.filename().string()).append(".tmp.").append(std::to_string(::getpid())).append(1, '.').append(hex);
    return dest.parent_path() / name;
}

inline void fsync_directory(const std::filesystem::path& dest, const std::filesystem::path& dir) {
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.fd < 0)
        ckpt_fail(dest, "saved, but cannot open directory '" + dir.string() +
                            "' to fsync the rename: " + errno_text(errno));
    // EINVAL: the file system does not support syncing directories; nothing more can be done.
    if (::fsync(d.fd) != 0 && errno != EINVAL)
        ckpt_fail(dest, "saved, but fsync of directory '" + dir.string() + "' failed (the rename may not be durable): " +
                            errno_text(errno));
}

/// The header JSON (keys sorted by nlohmann::json, so the bytes are deterministic).
inline std::string make_header(const std::filesystem::path& path, const std::vector<TensorRef>& refs,
                               const nlohmann::json& metadata, std::uint64_t& payload_size) {
    nlohmann::json entries = nlohmann::json::array();
    std::uint64_t off = 0;
    for (const auto& t : refs) {
        nlohmann::json shape = nlohmann::json::array();
        for (int i = 0; i < t.rank; ++i) shape.push_back(t.shape[static_cast<std::size_t>(i)]);
        const std::uint64_t nb = t.bytes();
        entries.push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", std::move(shape)},
                           {"offset", off}, {"nbytes", nb}});
        off = align8(off + nb);
    }
    payload_size = off;
    nlohmann::json header = {{"entries", std::move(entries)},
                             {"library_version", PERSIST_VERSION_STRING},
                             {"metadata", metadata.is_null() ? nlohmann::json::object() : metadata}};
    try {
        return header.dump();
    } catch (const nlohmann::json::exception& e) {
        ckpt_fail(path, std::string("cannot save: metadata or an entry name is not valid UTF-8 (") + e.what() + ")");
    }
}

inline void write_checkpoint(const std::filesystem::path& path, const std::vector<TensorRef>& refs,
                             const nlohmann::json& metadata) {
    namespace fs = std::filesystem;
    check_refs(path, refs, "save");
    if (path.filename().empty()) ckpt_fail(path, "cannot save: the path names no file");
    const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    std::error_code ec;
    const auto dst = fs::status(dir, ec);
    if (dst.type() == fs::file_type::not_found)
        ckpt_fail(path, "cannot save: directory '" + dir.string() + "' does not exist");
    if (ec) ckpt_fail(path, "cannot save: cannot access directory '" + dir.string() + "': " + ec.message());
    if (!fs::is_directory(dst)) ckpt_fail(path, "cannot save: '" + dir.string() + "' is not a directory");
    if (fs::is_directory(fs::status(path, ec)))
        ckpt_fail(path, "cannot save: the destination is a directory");

    std::uint64_t payload_size = 0;
    const std::string header = make_header(path, refs, metadata, payload_size);

    // Create the temporary with O_EXCL: never clobbers anything, even a racing writer's file.
    fs::path tmp;
    Fd fd;
    for (unsigned attempt = 0; fd.fd < 0; ++attempt) {
        tmp = temp_path_for(dir / path.filename(), attempt);
        fd.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd.fd < 0 && (errno != EEXIST || attempt >= 100))
            ckpt_fail(path, "cannot create temporary file '" + tmp.string() + "': " + errno_text(errno));
    }
    struct RemoveOnFailure {
        const fs::path& p;
        bool armed = true;
        ~RemoveOnFailure() {
            if (armed) ::unlink(p.c_str());
        }
    } guard{tmp};

    ChecksumWriter out(fd.fd, path, tmp);
    unsigned char pre[checkpoint_preamble_size] = {};
    std::memcpy(pre, checkpoint_magic.data(), checkpoint_magic.size());
    put_u32(pre + 12, checkpoint_format_version);
    put_u64(pre + 16, header.size());
    put_u64(pre + 24, payload_size);
    put_u32(pre + 32, crc32c(pre, 32));
    put_u32(pre + 36, 0);  // reserved
    out.put(pre, sizeof(pre));
    out.put(header.data(), header.size());
    out.put_zeros(align8(checkpoint_preamble_size + header.size()) - (checkpoint_preamble_size + header.size()));
    std::uint64_t off = 0;
    for (const auto& t : refs) {
        const std::size_t nb = t.bytes();
        if (nb > 0) out.put(t.data, nb);
        out.put_zeros(align8(off + nb) - (off + nb));
        off = align8(off + nb);
    }
    unsigned char trailer[checkpoint_trailer_size];
    put_u32(trailer, out.crc());
    out.put_raw(trailer, sizeof(trailer));
    out.flush();

    if (::fsync(fd.fd) != 0) ckpt_fail(path, "fsync of temporary file '" + tmp.string() + "' failed: " + errno_text(errno));
    if (const int err = fd.close_checked(); err != 0)
        ckpt_fail(path, "closing temporary file '" + tmp.string() + "' failed: " + errno_text(err));
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        ckpt_fail(path, "cannot rename temporary file '" + tmp.string() + "' over the destination: " +
                            errno_text(errno));
    guard.armed = false;
    fsync_directory(path, dir);
}

/// A verified file held in memory (`bytes` is the whole file, or only preamble + header when
/// the checksum is not verified).
struct Image {
    std::vector<unsigned char> bytes;
    CheckpointInfo info;
};

inline void read_exact(const std::filesystem::path& path, int fd, unsigned char* p, std::size_t n,
                       std::uint64_t at, std::uint64_t file_size) {
    std::uint64_t pos = at;
    while (n > 0) {
        const ::ssize_t r = ::pread(fd, p, std::min<std::size_t>(n, std::size_t{1} << 30), static_cast<::off_t>(pos));
        if (r < 0) {
            if (errno == EINTR) continue;
            ckpt_fail(path, "read failed: " + errno_text(errno));
        }
        if (r == 0)
            ckpt_fail(path, "truncated while reading (the file had " + std::to_string(file_size) +
                                " bytes when opened, now ends at byte " + std::to_string(pos) + ")");
        p += r;
        pos += static_cast<std::uint64_t>(r);
        n -= static_cast<std::size_t>(r);
    }
}

/// Validate the parsed header against the layout; fills info.entries / metadata / version.
inline void parse_header(const std::filesystem::path& path, const unsigned char* text, std::size_t n,
                         CheckpointInfo& info) {
    nlohmann::json h;
    try {
        h = nlohmann::json::parse(text, text + n);
    } catch (const nlohmann::json::exception& e) {
        ckpt_fail(path, std::string("header is not valid JSON (") + e.what() + ")");
    }
    const auto bad = [&](const std::string& what) { ckpt_fail(path, "malformed header: " + what); };
    if (!h.is_object()) bad("not a JSON object");
    if (!h.contains("entries") || !h["entries"].is_array()) bad("no 'entries' array");
    if (!h.contains("metadata")) bad("no 'metadata'");
    if (!h.contains("library_version") || !h["library_version"].is_string()) bad("no 'library_version' string");
    info.library_version = h["library_version"].get<std::string>();
    info.metadata = std::move(h["metadata"]);

    std::unordered_set<std::string> names;
    for (std::size_t i = 0; i < h["entries"].size(); ++i) {
        const auto& j = h["entries"][i];
        const std::string where = "entry #" + std::to_string(i);
        if (!j.is_object()) bad(where + " is not an object");
        if (!j.contains("name") || !j["name"].is_string() || j["name"].get_ref<const std::string&>().empty())
            bad(where + " has no non-empty 'name' string");
        EntryInfo e;
        e.name = j["name"].get<std::string>();
        const std::string we = "entry '" + e.name + "'";
        if (!names.insert(e.name).second) bad(we + " appears twice");
        if (!j.contains("dtype") || !j["dtype"].is_string() || !parse_dtype(j["dtype"].get<std::string>(), e.dtype))
            bad(we + " has no valid 'dtype' (f32, f64, i64 or u64)");
        if (!j.contains("shape") || !j["shape"].is_array() || j["shape"].size() > 4)
            bad(we + " has no 'shape' array of rank <= 4");
        e.rank = static_cast<int>(j["shape"].size());
        std::uint64_t numel = 1;
        for (std::size_t k = 0; k < j["shape"].size(); ++k) {
            const auto& d = j["shape"][k];
            if (!d.is_number_unsigned()) bad(we + " has a shape dimension that is not a non-negative integer");
            const auto v = d.get<std::uint64_t>();
            if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
                (v != 0 && numel > std::numeric_limits<std::uint64_t>::max() / 8 / v))
                bad(we + " has an impossibly large shape");
            e.shape[k] = static_cast<std::int64_t>(v);
            numel *= v;
        }
        if (!j.contains("offset") || !j["offset"].is_number_unsigned() || !j.contains("nbytes") ||
            !j["nbytes"].is_number_unsigned())
            bad(we + " has no unsigned 'offset' and 'nbytes'");
        e.offset = j["offset"].get<std::uint64_t>();
        e.nbytes = j["nbytes"].get<std::uint64_t>();
        if (e.nbytes != numel * dtype_size(e.dtype))
            bad(we + " has nbytes " + std::to_string(e.nbytes) + ", but " + dtype_name(e.dtype) + " " +
                e.shape_string() + " needs " + std::to_string(numel * dtype_size(e.dtype)));
        if (e.offset % checkpoint_alignment != 0) bad(we + " has offset " + std::to_string(e.offset) + ", not a multiple of 8");
        if (e.offset > info.payload_size || e.nbytes > info.payload_size - e.offset)
            bad(we + " (offset " + std::to_string(e.offset) + ", " + std::to_string(e.nbytes) +
                " bytes) ends past the payload (" + std::to_string(info.payload_size) + " bytes)");
        info.entries.push_back(std::move(e));
    }
    // Entries must not overlap (in any order).
    std::vector<const EntryInfo*> by_off;
    for (const auto& e : info.entries) by_off.push_back(&e);
    std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_off.size(); ++i)
        if (by_off[i - 1]->offset + by_off[i - 1]->nbytes > by_off[i]->offset)
            bad("entries '" + by_off[i - 1]->name + "' and '" + by_off[i]->name + "' overlap");
}

/// Read and verify a checkpoint. With `full`, the whole file is read and its checksum verified;
/// otherwise only preamble and header are read (sizes are still checked against the file).
inline Image read_checkpoint(const std::filesystem::path& path, bool full) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) ckpt_fail(path, "cannot open for reading: " + errno_text(errno));
    struct stat st {};
    if (::fstat(fd.fd, &st) != 0) ckpt_fail(path, "cannot stat: " + errno_text(errno));
    if (!S_ISREG(st.st_mode)) ckpt_fail(path, "not a regular file");
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    const std::string has = ", file has " + std::to_string(file_size) + ")";
    if (file_size == 0) ckpt_fail(path, "empty file (not a PERSIST checkpoint)");

    // 1. Magic, then version: checked before anything else so that a future format may change
    //    everything after byte 16.
    unsigned char pre[checkpoint_preamble_size] = {};
    const std::size_t npre = static_cast<std::size_t>(std::min<std::uint64_t>(file_size, sizeof(pre)));
    read_exact(path, fd.fd, pre, npre, 0, file_size);
    if (std::memcmp(pre, checkpoint_magic.data(), std::min(npre, checkpoint_magic.size())) != 0)
        ckpt_fail(path, "not a PERSIST checkpoint (bad magic)");
    if (npre < 16) ckpt_fail(path, "truncated (expected at least 16 bytes of magic and version" + has);
    const std::uint32_t version = get_u32(pre + 12);
    if (version != checkpoint_format_version)
        ckpt_fail(path, "format version " + std::to_string(version) + ", this build reads version " +
                            std::to_string(checkpoint_format_version));
    if (npre < checkpoint_preamble_size)
        ckpt_fail(path, "truncated (expected a " + std::to_string(checkpoint_preamble_size) + "-byte preamble" + has);

    // 2. The preamble has its own checksum, so the sizes it gives are trusted from here on.
    if (get_u32(pre + 32) != crc32c(pre, 32)) ckpt_fail(path, "preamble checksum mismatch (file corrupted)");
    if (get_u32(pre + 36) != 0) ckpt_fail(path, "reserved preamble field is not zero (file corrupted)");
    CheckpointInfo info;
    info.format_version = version;
    info.file_size = file_size;
    info.header_size = get_u64(pre + 16);
    info.payload_size = get_u64(pre + 24);
    constexpr std::uint64_t lim = std::uint64_t{1} << 60;  // keeps the sums below exact
    if (info.header_size > lim || info.payload_size > lim || info.payload_size % checkpoint_alignment != 0)
        ckpt_fail(path, "preamble gives impossible sizes (header " + std::to_string(info.header_size) +
                            ", payload " + std::to_string(info.payload_size) + " bytes)");
    info.payload_offset = align8(checkpoint_preamble_size + info.header_size);
    const std::uint64_t payload_end = info.payload_offset + info.payload_size;
    const std::uint64_t expected = payload_end + checkpoint_trailer_size;
    if (file_size < checkpoint_preamble_size + info.header_size)
        ckpt_fail(path, "truncated (expected " + std::to_string(info.header_size) + " bytes of header" +
                            ", file has " + std::to_string(file_size - checkpoint_preamble_size) +
                            " after the preamble; " + std::to_string(expected) + " bytes in total)");
    if (file_size < payload_end)
        ckpt_fail(path, "truncated (expected " + std::to_string(info.payload_size) + " bytes of payload" +
                            ", file has " + std::to_string(file_size > info.payload_offset ? file_size - info.payload_offset : 0) +
                            "; " + std::to_string(expected) + " bytes in total)");
    if (file_size < expected)
        ckpt_fail(path, "truncated (expected a " + std::to_string(checkpoint_trailer_size) +
                            "-byte checksum after the payload; " + std::to_string(expected) + " bytes in total" + has);
    if (file_size > expected)
        ckpt_fail(path, "has " + std::to_string(file_size - expected) + " unexpected bytes after the checksum (expected " +
                            std::to_string(expected) + " bytes in total" + has);

    // 3. Read everything (or only the header) and verify the checksum before parsing anything.
    Image img;
    const std::uint64_t nread = full ? expected : checkpoint_preamble_size + info.header_size;
    img.bytes.resize(static_cast<std::size_t>(nread));
    std::memcpy(img.bytes.data(), pre, sizeof(pre));
    read_exact(path, fd.fd, img.bytes.data() + sizeof(pre), img.bytes.size() - sizeof(pre), sizeof(pre), file_size);
    if (full) {
        info.checksum = get_u32(img.bytes.data() + payload_end);
        const std::uint32_t computed = crc32c(img.bytes.data(), static_cast<std::size_t>(payload_end));
        if (computed != info.checksum) ckpt_fail(path, "checksum mismatch (file corrupted)");
        info.checksum_verified = true;
    } else {
        unsigned char tr[checkpoint_trailer_size];
        read_exact(path, fd.fd, tr, sizeof(tr), payload_end, file_size);
        info.checksum = get_u32(tr);
    }
    parse_header(path, img.bytes.data() + checkpoint_preamble_size, static_cast<std::size_t>(info.header_size), info);
    img.info = std::move(info);
    return img;
}

/// Match every object tensor to a file entry (name, dtype, shape), then copy. Nothing is
/// written to the objects unless every check passes.
inline void load_into(const std::filesystem::path& path, const Image& img, const std::vector<TensorRef>& refs,
                      ExtraEntries extra) {
    check_refs(path, refs, "load");
    std::unordered_map<std::string_view, const EntryInfo*> by_name;
    for (const auto& e : img.info.entries) by_name.emplace(e.name, &e);
    std::vector<const EntryInfo*> match;
    match.reserve(refs.size());
    for (const auto& t : refs) {
        const auto it = by_name.find(t.name);
        if (it == by_name.end()) ckpt_fail(path, "missing entry '" + t.name + "'");
        const EntryInfo& e = *it->second;
        if (e.dtype != t.dtype)
            ckpt_fail(path, "entry '" + t.name + "' has dtype " + dtype_name(e.dtype) + ", object expects " +
                                dtype_name(t.dtype));
        bool same = e.rank == t.rank;
        for (int i = 0; same && i < t.rank; ++i) same = e.shape[static_cast<std::size_t>(i)] == t.shape[static_cast<std::size_t>(i)];
        if (!same)
            ckpt_fail(path, "entry '" + t.name + "' has shape " + e.shape_string() + ", object expects " +
                                t.shape_string());
        match.push_back(&e);
    }
    if (extra == ExtraEntries::error && refs.size() != img.info.entries.size()) {
        std::unordered_set<std::string_view> wanted;
        for (const auto& t : refs) wanted.insert(t.name);
        for (const auto& e : img.info.entries)
            if (!wanted.count(e.name))
                ckpt_fail(path, "unexpected entry '" + e.name + "' (the object has no such state; load with "
                                "ExtraEntries::ignore to load a subset)");
    }
    const unsigned char* payload = img.bytes.data() + img.info.payload_offset;
    for (std::size_t i = 0; i < refs.size(); ++i)
        if (match[i]->nbytes > 0) std::memcpy(refs[i].data, payload + match[i]->offset, static_cast<std::size_t>(match[i]->nbytes));
}

}  // namespace detail

/// Saves several objects into one checkpoint, each under its own name prefix.
/// @code
///   CheckpointWriter w;
///   w.add("actor", actor).add("critic", critic).add("actor_opt", actor_opt);
///   w.save("run/agent.ckpt", {{"env_steps", 100000}});
/// @endcode
/// Objects are held by reference and visited at `save` time, so they must outlive the writer.
class CheckpointWriter {
public:
    /// Add `obj`'s state with names "<prefix>.<name>" (an empty prefix keeps names as they are).
    template <class Obj>
    CheckpointWriter& add(std::string prefix, const Obj& obj) {
        // visit_state is non-const (the same visitor serves loading); saving only reads.
        collectors_.push_back(detail::make_collector(const_cast<Obj&>(obj), std::move(prefix)));
        return *this;
    }
    /// Temporaries would dangle before `save`: keep the object in a named variable.
    template <class Obj>
    CheckpointWriter& add(std::string prefix, const Obj&& obj) = delete;
    /// Atomically write every added object and `metadata` (any JSON; null is stored as {}).
    void save(const std::filesystem::path& path, const nlohmann::json& metadata = {}) const {
        detail::write_checkpoint(path, detail::collect_all(collectors_), metadata);
    }

private:
    std::vector<detail::Collector> collectors_;
};

/// Reads and verifies a checkpoint on construction; `load` restores the added objects.
/// @code
///   CheckpointReader r("run/agent.ckpt");   // throws CheckpointError if damaged
///   r.add("actor", actor).add("critic", critic).add("actor_opt", actor_opt);
///   nlohmann::json meta = r.load();         // all objects or none are modified
/// @endcode
class CheckpointReader {
public:
    explicit CheckpointReader(std::filesystem::path path)
        : path_(std::move(path)), image_(detail::read_checkpoint(path_, true)) {}

    const std::filesystem::path& path() const { return path_; }
    const CheckpointInfo& info() const { return image_.info; }
    const nlohmann::json& metadata() const { return image_.info.metadata; }

    /// Load `obj`'s state from entries "<prefix>.<name>" (an empty prefix: "<name>").
    template <class Obj>
    CheckpointReader& add(std::string prefix, Obj& obj) {
        collectors_.push_back(detail::make_collector(obj, std::move(prefix)));
        return *this;
    }
    /// Check every added object against the file, then copy into all of them; returns the
    /// metadata. Throws CheckpointError, leaving every object unchanged, on any mismatch.
    nlohmann::json load(ExtraEntries extra = ExtraEntries::error) const {
        detail::load_into(path_, image_, detail::collect_all(collectors_), extra);
        return image_.info.metadata;
    }

private:
    std::filesystem::path path_;
    detail::Image image_;
    std::vector<detail::Collector> collectors_;
};

/// Atomically save `obj` (and `metadata`, any JSON) to `path`.
template <class Obj>
void save_checkpoint(const std::filesystem::path& path, const Obj& obj, const nlohmann::json& metadata = {}) {
    CheckpointWriter().add("", obj).save(path, metadata);
}

/// Load `obj` from `path` (transactional: `obj` is unchanged if this throws); returns the metadata.
template <class Obj>
nlohmann::json load_checkpoint(const std::filesystem::path& path, Obj& obj, ExtraEntries extra = ExtraEntries::error) {
    CheckpointReader r(path);
    r.add("", obj);
    return r.load(extra);
}

/// The header of a checkpoint (entries, metadata, versions, sizes) for tooling. With
/// `verify_checksum` (default) the whole file is read and its checksum checked; without, only
/// the preamble and header are read.
inline CheckpointInfo inspect_checkpoint(const std::filesystem::path& path, bool verify_checksum = true) {
    return detail::read_checkpoint(path, verify_checksum).info;
}

}  // namespace persist::io
