#pragma once
/// @file error.hpp
/// The one exception family of PERSIST. Every message names what was wrong and where
/// (config key path, file and line, tensor name and shape) and what was expected.
#include <stdexcept>
#include <string>

namespace persist {

/// Base of every error PERSIST throws on bad input. Catch this to handle them all.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A configuration value, key or expression is malformed, unknown or out of range.
class ConfigError : public Error {
public:
    using Error::Error;
};

/// Dimensions of an argument do not match what the callee was built for.
class ShapeError : public Error {
public:
    using Error::Error;
};

/// A file could not be read or written, or its content is malformed (names file, line).
class IoError : public Error {
public:
    using Error::Error;
};

/// A checkpoint is truncated, corrupted, of another version, or does not fit the object.
class CheckpointError : public IoError {
public:
    using IoError::IoError;
};

namespace detail {
/// Throws ShapeError with "<where>: expected <a> x <b>, got <c> x <d>".
[[noreturn]] inline void throw_shape(const std::string& where, long er, long ec, long gr, long gc) {
    throw ShapeError(where + ": expected " + std::to_string(er) + " x " + std::to_string(ec) +
                     ", got " + std::to_string(gr) + " x " + std::to_string(gc));
}
}  // namespace detail

}  // namespace persist
