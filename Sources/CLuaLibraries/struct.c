// struct for Redis scripts: binary packing in the format language of Roberto Ierusalimschy's
// struct library, the version Redis 7.0 loads (its deps/lua/src/lua_struct.c): struct.pack,
// struct.unpack, struct.size, with the same sizes, alignment rule and error texts.
//
//   >  <        big, little endian for what follows (little by default, the native order here)
//   ![n]        maximum alignment n (default: the platform's largest, 8)
//   x           one zero byte of padding
//   b B h H     signed/unsigned char (1) and short (2)
//   l L T       signed/unsigned long and size_t (8)
//   i[n] I[n]   signed/unsigned integer of n bytes (default 4, at most 32)
//   c[n]        n bytes of a string; c0: the whole string (pack) / the previous number (unpack)
//   s           zero-terminated string
//   f d         float, double
//   ' '         ignored
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <lua5.1/lauxlib.h>
#include <lua5.1/lua.h>

#include "CLuaLibraries.h"

enum { STRUCT_MAX_INTEGER_SIZE = 32, STRUCT_MAX_ALIGN = 8 };

typedef struct {
    int littleEndian;
    size_t align;
} StructHeader;

/// The decimal number at `*format` (advancing past it), or `fallback` if there is none.
static size_t struct_number(lua_State *state, const char **format, size_t fallback) {
    if (!isdigit((unsigned char)**format)) return fallback;
    int value = 0;
    do {
        int digit = **format - '0';
        if (value > (INT_MAX - digit) / 10) luaL_error(state, "integral size overflow");
        value = value * 10 + digit;
        (*format)++;
    } while (isdigit((unsigned char)**format));
    return (size_t)value;
}

static int is_power_of_two(size_t value) { return value > 0 && (value & (value - 1)) == 0; }

/// The size in bytes of option `option` (reading its count, if any), 0 for options without data.
static size_t struct_option_size(lua_State *state, char option, const char **format) {
    switch (option) {
    case 'B': case 'b': case 'x': return 1;
    case 'H': case 'h': return 2;
    case 'L': case 'l': case 'T': return 8;
    case 'f': return 4;
    case 'd': return 8;
    case 'c': return struct_number(state, format, 1);
    case 'i': case 'I': {
        size_t size = struct_number(state, format, 4);
        if (size > STRUCT_MAX_INTEGER_SIZE) {
            luaL_error(state, "integral size %d is larger than limit of %d", (int)size, STRUCT_MAX_INTEGER_SIZE);
        }
        return size;
    }
    default: return 0;
    }
}

/// Padding before an item of `size` bytes at offset `position` (strings are never aligned).
static size_t struct_padding(size_t position, const StructHeader *header, char option, size_t size) {
    if (size == 0 || option == 'c') return 0;
    if (size > header->align) size = header->align;
    return (size - (position & (size - 1))) & (size - 1);
}

/// The options that change the header; anything else unknown is an error.
static void struct_control(lua_State *state, char option, const char **format, StructHeader *header) {
    switch (option) {
    case ' ': return;
    case '>': header->littleEndian = 0; return;
    case '<': header->littleEndian = 1; return;
    case '!': {
        size_t align = struct_number(state, format, STRUCT_MAX_ALIGN);
        if (!is_power_of_two(align)) luaL_error(state, "alignment %d is not a power of 2", (int)align);
        header->align = align;
        return;
    }
    default: luaL_argerror(state, 1, lua_pushfstring(state, "invalid format option '%c'", option));
    }
}

/// Copies `size` bytes of a native (little-endian) value in the header's byte order.
static void struct_ordered(char *target, const void *source, size_t size, int littleEndian) {
    const char *bytes = source;
    for (size_t index = 0; index < size; index++) {
        target[index] = littleEndian ? bytes[index] : bytes[size - 1 - index];
    }
}

/// struct.pack(format, ...)
static int struct_pack(lua_State *state) {
    const char *format = luaL_checkstring(state, 1);
    StructHeader header = {1, 1};
    int argument = 2;
    size_t total = 0;
    luaL_Buffer buffer;
    lua_pushnil(state);  // keeps the arguments apart from the buffer's pieces
    luaL_buffinit(state, &buffer);
    while (*format != '\0') {
        char option = *format++;
        size_t size = struct_option_size(state, option, &format);
        size_t padding = struct_padding(total, &header, option, size);
        total += padding;
        while (padding-- > 0) luaL_addchar(&buffer, '\0');
        switch (option) {
        case 'b': case 'B': case 'h': case 'H': case 'l': case 'L': case 'T': case 'i': case 'I': {
            lua_Number number = luaL_checknumber(state, argument++);
            // Negative values through a signed conversion, others through an unsigned one; bytes
            // past the eighth are zero (the value shifts in as unsigned).
            uint64_t value = number < 0 ? (uint64_t)(int64_t)number : (uint64_t)number;
            char bytes[STRUCT_MAX_INTEGER_SIZE];
            for (size_t index = 0; index < size; index++) {
                unsigned char byte = index < 8 ? (unsigned char)(value >> (8 * index)) : 0;
                bytes[header.littleEndian ? index : size - 1 - index] = (char)byte;
            }
            luaL_addlstring(&buffer, bytes, size);
            break;
        }
        case 'x': luaL_addchar(&buffer, '\0'); break;
        case 'f': {
            float value = (float)luaL_checknumber(state, argument++);
            char bytes[4];
            struct_ordered(bytes, &value, 4, header.littleEndian);
            luaL_addlstring(&buffer, bytes, 4);
            break;
        }
        case 'd': {
            double value = luaL_checknumber(state, argument++);
            char bytes[8];
            struct_ordered(bytes, &value, 8, header.littleEndian);
            luaL_addlstring(&buffer, bytes, 8);
            break;
        }
        case 'c': case 's': {
            size_t length;
            const char *string = luaL_checklstring(state, argument++, &length);
            if (size == 0) size = length;
            luaL_argcheck(state, length >= size, argument, "string too short");
            luaL_addlstring(&buffer, string, size);
            if (option == 's') {
                luaL_addchar(&buffer, '\0');
                size++;
            }
            break;
        }
        default: struct_control(state, option, &format, &header);
        }
        total += size;
    }
    luaL_pushresult(&buffer);
    return 1;
}

/// The `size`-byte integer at `bytes`, sign-extended when `isSigned`.
static lua_Number struct_integer(const char *bytes, size_t size, int littleEndian, int isSigned) {
    uint64_t value = 0;
    for (size_t step = 0; step < size; step++) {
        size_t index = littleEndian ? size - 1 - step : step;
        value = (value << 8) | (unsigned char)bytes[index];
    }
    if (!isSigned) return (lua_Number)value;
    if (size < 8) {
        uint64_t sign = (uint64_t)1 << (size * 8 - 1);
        if (value & sign) value |= ~(uint64_t)0 << (size * 8 - 1);
    }
    return (lua_Number)(int64_t)value;
}

/// struct.unpack(format, data [, position]): the values, then the position after them.
static int struct_unpack(lua_State *state) {
    const char *format = luaL_checkstring(state, 1);
    size_t length;
    const char *data = luaL_checklstring(state, 2, &length);
    lua_Integer start = luaL_optinteger(state, 3, 1);
    luaL_argcheck(state, start > 0, 3, "offset must be 1 or greater");
    size_t position = (size_t)start - 1;
    StructHeader header = {1, 1};
    lua_settop(state, 2);
    while (*format != '\0') {
        char option = *format++;
        size_t size = struct_option_size(state, option, &format);
        position += struct_padding(position, &header, option, size);
        luaL_argcheck(state, size <= length && position <= length - size, 2, "data string too short");
        luaL_checkstack(state, 2, "too many results");
        switch (option) {
        case 'b': case 'B': case 'h': case 'H': case 'l': case 'L': case 'T': case 'i': case 'I':
            lua_pushnumber(state, struct_integer(data + position, size, header.littleEndian, islower((unsigned char)option)));
            break;
        case 'x': break;
        case 'f': {
            float value;
            char bytes[4];
            struct_ordered(bytes, data + position, 4, header.littleEndian);
            memcpy(&value, bytes, 4);
            lua_pushnumber(state, value);
            break;
        }
        case 'd': {
            double value;
            char bytes[8];
            struct_ordered(bytes, data + position, 8, header.littleEndian);
            memcpy(&value, bytes, 8);
            lua_pushnumber(state, value);
            break;
        }
        case 'c':
            if (size == 0) {
                if (lua_gettop(state) <= 2 || !lua_isnumber(state, -1)) {
                    luaL_error(state, "format 'c0' needs a previous size");
                }
                size = (size_t)lua_tonumber(state, -1);
                lua_pop(state, 1);
                luaL_argcheck(state, size <= length && position <= length - size, 2, "data string too short");
            }
            lua_pushlstring(state, data + position, size);
            break;
        case 's': {
            const char *end = memchr(data + position, '\0', length - position);
            if (end == NULL) luaL_error(state, "unfinished string in data");
            size = (size_t)(end - (data + position)) + 1;
            lua_pushlstring(state, data + position, size - 1);
            break;
        }
        default: struct_control(state, option, &format, &header);
        }
        position += size;
    }
    lua_pushinteger(state, (lua_Integer)position + 1);
    return lua_gettop(state) - 2;
}

/// struct.size(format): the bytes struct.pack writes for `format` (no variable-length options).
static int struct_size(lua_State *state) {
    const char *format = luaL_checkstring(state, 1);
    StructHeader header = {1, 1};
    size_t position = 0;
    while (*format != '\0') {
        char option = *format++;
        size_t size = struct_option_size(state, option, &format);
        position += struct_padding(position, &header, option, size);
        if (option == 's') luaL_argerror(state, 1, "option 's' has no fixed size");
        else if (option == 'c' && size == 0) luaL_argerror(state, 1, "option 'c0' has no fixed size");
        if (!isalnum((unsigned char)option)) struct_control(state, option, &format, &header);
        position += size;
    }
    lua_pushinteger(state, (lua_Integer)position);
    return 1;
}

int tally_luaopen_struct(lua_State *state) {
    static const luaL_Reg functions[] = {
        {"pack", struct_pack},
        {"unpack", struct_unpack},
        {"size", struct_size},
        {NULL, NULL},
    };
    luaL_register(state, "struct", functions);
    return 1;
}
