#pragma once
/// @file crc32c.hpp
/// CRC-32C (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of the
/// checkpoint format. Table-driven "slicing-by-8" (Kounavis & Berry 2005): eight bytes per step,
/// a few GB/s in portable C++, so checksumming is never the bottleneck of a save or a load.
/// Check value: crc32c("123456789") == 0xE3069283 (RFC 3720, appendix B.4).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace persist::io {

namespace detail {
inline constexpr std::array<std::array<std::uint32_t, 256>, 8> make_crc32c_tables() {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
        t[0][i] = c;
    }
    for (std::size_t s = 1; s < 8; ++s)
        for (std::size_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
    return t;
}
inline constexpr auto crc32c_tables = make_crc32c_tables();
}  // namespace detail

/// CRC-32C of `n` bytes at `data`. To checksum a stream in pieces, pass the previous result as
/// `crc`: crc32c(b, nb, crc32c(a, na)) == crc32c(a ++ b).
inline std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) {
    const auto& t = detail::crc32c_tables;
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint32_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        // Little-endian assembly of the first word, independent of host byte order.
        const std::uint32_t lo = c ^ (static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                                      static_cast<std::uint32_t>(p[2]) << 16 |
                                      static_cast<std::uint32_t>(p[3]) << 24);
        c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
            t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    for (; n > 0; --n, ++p) c = (c >> 8) ^ t[0][(c ^ *p) & 0xFFu];
    return ~c;
}

}  // namespace persist::io
