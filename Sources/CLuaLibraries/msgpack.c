// cmsgpack for Redis scripts: Lua values to MessagePack and back, with the encodings, limits and
// error texts Redis 7.0's scripting environment has (its deps/lua/src/lua_cmsgpack.c, version
// "lua-cmsgpack 0.4.0"): strings as fixstr/str16/str32 (no str8), integral numbers in the
// smallest integer form, other numbers as float32 when exact else float64, tables as arrays when
// their keys are exactly 1..n else maps, nesting cut to nil below 16 levels (circular tables).
// Format: https://github.com/msgpack/msgpack/blob/master/spec.md
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lua5.1/lauxlib.h>
#include <lua5.1/lua.h>

#include "CLuaLibraries.h"

/// Tables deeper than this are encoded as nil, so a table that contains itself still packs.
enum { MSGPACK_MAX_NESTING = 16 };

// MARK: - Encoding

/// A growable byte buffer (malloc: the encoder pushes and pops Lua values while it appends, which
/// a luaL_Buffer, living on the Lua stack, does not allow).
typedef struct {
    unsigned char *bytes;
    size_t count;
    size_t capacity;
} PackBuffer;

static void pack_append(PackBuffer *buffer, const void *bytes, size_t count) {
    if (buffer->capacity - buffer->count < count) {
        size_t wanted = (buffer->count + count) * 2;
        unsigned char *grown = realloc(buffer->bytes, wanted);
        if (grown == NULL) abort();
        buffer->bytes = grown;
        buffer->capacity = wanted;
    }
    memcpy(buffer->bytes + buffer->count, bytes, count);
    buffer->count += count;
}

/// `marker` then the low `width` bytes of `value`, big-endian (MessagePack's byte order).
static void pack_header(PackBuffer *buffer, unsigned char marker, uint64_t value, int width) {
    unsigned char bytes[9];
    bytes[0] = marker;
    for (int index = 0; index < width; index++) {
        bytes[1 + index] = (unsigned char)(value >> (8 * (width - 1 - index)));
    }
    pack_append(buffer, bytes, (size_t)(1 + width));
}

static void pack_integer(PackBuffer *buffer, int64_t value) {
    if (value >= 0) {
        if (value <= 127) pack_header(buffer, (unsigned char)value, 0, 0);
        else if (value <= 0xff) pack_header(buffer, 0xcc, (uint64_t)value, 1);
        else if (value <= 0xffff) pack_header(buffer, 0xcd, (uint64_t)value, 2);
        else if (value <= 0xffffffffLL) pack_header(buffer, 0xce, (uint64_t)value, 4);
        else pack_header(buffer, 0xcf, (uint64_t)value, 8);
    } else {
        if (value >= -32) pack_header(buffer, (unsigned char)(int8_t)value, 0, 0);
        else if (value >= -128) pack_header(buffer, 0xd0, (uint64_t)value, 1);
        else if (value >= -32768) pack_header(buffer, 0xd1, (uint64_t)value, 2);
        else if (value >= -2147483648LL) pack_header(buffer, 0xd2, (uint64_t)value, 4);
        else pack_header(buffer, 0xd3, (uint64_t)value, 8);
    }
}

static void pack_number(PackBuffer *buffer, double number) {
    // Integral and inside int64: an integer form. (The range test first: converting an
    // out-of-range double to int64_t is undefined in C.)
    if (isfinite(number) && number >= -9223372036854775808.0 && number < 9223372036854775808.0
        && (double)(int64_t)number == number) {
        pack_integer(buffer, (int64_t)number);
        return;
    }
    float narrow = (float)number;
    if ((double)narrow == number) {
        uint32_t bits;
        memcpy(&bits, &narrow, sizeof bits);
        pack_header(buffer, 0xca, bits, 4);
    } else {
        uint64_t bits;
        memcpy(&bits, &number, sizeof bits);
        pack_header(buffer, 0xcb, bits, 8);
    }
}

static void pack_string(PackBuffer *buffer, const char *bytes, size_t count) {
    if (count < 32) pack_header(buffer, (unsigned char)(0xa0 | count), 0, 0);
    else if (count <= 0xff) pack_header(buffer, 0xd9, count, 1);
    else if (count <= 0xffff) pack_header(buffer, 0xda, count, 2);
    else pack_header(buffer, 0xdb, count, 4);
    pack_append(buffer, bytes, count);
}

static void pack_collection_header(PackBuffer *buffer, size_t count, int isMap) {
    if (count <= 15) pack_header(buffer, (unsigned char)((isMap ? 0x80 : 0x90) | count), 0, 0);
    else if (count <= 0xffff) pack_header(buffer, isMap ? 0xde : 0xdc, count, 2);
    else pack_header(buffer, isMap ? 0xdf : 0xdd, count, 4);
}

/// True if the table on top of the stack has only keys 1..n: numbers (not numeric strings) that
/// are positive and fit an int, as many as the highest. The rule Redis's library applies, kept so
/// that the same table packs to the same bytes.
static int table_is_array(lua_State *state) {
    int top = lua_gettop(state);
    long long count = 0;
    double highest = 0;
    lua_pushnil(state);
    while (lua_next(state, -2)) {
        lua_pop(state, 1);
        double key;
        if (lua_type(state, -1) != LUA_TNUMBER || (key = lua_tonumber(state, -1)) <= 0
            || key > (double)INT_MAX || (double)(int)key != key) {
            lua_settop(state, top);
            return 0;
        }
        if (key > highest) highest = key;
        count++;
    }
    lua_settop(state, top);
    return (double)count == highest;
}

static void pack_value(lua_State *state, PackBuffer *buffer, int level);

/// Packs the table on top of the stack (left there).
static void pack_table(lua_State *state, PackBuffer *buffer, int level) {
    luaL_checkstack(state, 3, "too deeply nested table");
    if (table_is_array(state)) {
        size_t count = lua_objlen(state, -1);
        pack_collection_header(buffer, count, 0);
        for (size_t index = 1; index <= count; index++) {
            lua_pushnumber(state, (lua_Number)index);
            lua_gettable(state, -2);
            pack_value(state, buffer, level + 1);
        }
        return;
    }
    size_t count = 0;
    lua_pushnil(state);
    while (lua_next(state, -2)) {
        lua_pop(state, 1);
        count++;
    }
    pack_collection_header(buffer, count, 1);
    lua_pushnil(state);
    while (lua_next(state, -2)) {
        lua_pushvalue(state, -2);            // key value key
        pack_value(state, buffer, level + 1);  // the key copy, popped
        pack_value(state, buffer, level + 1);  // the value, popped; the key stays for lua_next
    }
}

/// Packs the value on top of the stack and pops it.
static void pack_value(lua_State *state, PackBuffer *buffer, int level) {
    int type = lua_type(state, -1);
    if (type == LUA_TTABLE && level == MSGPACK_MAX_NESTING) type = LUA_TNIL;
    switch (type) {
    case LUA_TSTRING: {
        size_t count;
        const char *bytes = lua_tolstring(state, -1, &count);
        pack_string(buffer, bytes, count);
        break;
    }
    case LUA_TBOOLEAN: {
        unsigned char marker = lua_toboolean(state, -1) ? 0xc3 : 0xc2;
        pack_append(buffer, &marker, 1);
        break;
    }
    case LUA_TNUMBER: pack_number(buffer, lua_tonumber(state, -1)); break;
    case LUA_TTABLE: pack_table(state, buffer, level); break;
    default: {
        unsigned char marker = 0xc0;  // nil, and what has no MessagePack form (functions...)
        pack_append(buffer, &marker, 1);
        break;
    }
    }
    lua_pop(state, 1);
}

/// cmsgpack.pack(v1, v2, ...): the values' encodings back to back.
static int msgpack_pack(lua_State *state) {
    int arguments = lua_gettop(state);
    if (arguments == 0) return luaL_argerror(state, 0, "MessagePack pack needs input.");
    PackBuffer buffer = {NULL, 0, 0};
    for (int index = 1; index <= arguments; index++) {
        lua_pushvalue(state, index);
        pack_value(state, &buffer, 0);
    }
    lua_pushlstring(state, (const char *)buffer.bytes, buffer.count);
    free(buffer.bytes);
    return 1;
}

// MARK: - Decoding

enum { READ_OK = 0, READ_TRUNCATED = 1, READ_BAD_FORMAT = 2 };

typedef struct {
    const unsigned char *bytes;
    size_t left;
    int status;
} UnpackCursor;

/// The `width`-byte big-endian unsigned integer after the marker (the caller checked the length).
static uint64_t read_big_endian(const unsigned char *bytes, int width) {
    uint64_t value = 0;
    for (int index = 0; index < width; index++) value = (value << 8) | bytes[index];
    return value;
}

static void unpack_value(lua_State *state, UnpackCursor *cursor);

static void unpack_collection(lua_State *state, UnpackCursor *cursor, uint64_t count, int isMap) {
    lua_newtable(state);
    for (uint64_t index = 1; index <= count; index++) {
        if (isMap) {
            unpack_value(state, cursor);
            if (cursor->status != READ_OK) return;
        } else {
            lua_pushnumber(state, (lua_Number)index);
        }
        unpack_value(state, cursor);
        if (cursor->status != READ_OK) return;
        lua_settable(state, -3);
    }
}

/// Decodes one value onto the stack, or sets the cursor's status.
static void unpack_value(lua_State *state, UnpackCursor *cursor) {
    if (cursor->left < 1) {
        cursor->status = READ_TRUNCATED;
        return;
    }
    // One more slot per value: unpack returns every top-level value on the stack.
    luaL_checkstack(state, 1, "too many return values at once; use unpack_one or unpack_limit instead.");
    const unsigned char *at = cursor->bytes;
    unsigned char marker = at[0];
    // Fixed-size forms: marker, then `width` bytes.
    int width = -1;
    switch (marker) {
    case 0xc0: case 0xc2: case 0xc3: width = 0; break;
    case 0xcc: case 0xd0: case 0xd9: width = 1; break;
    case 0xcd: case 0xd1: width = 2; break;
    case 0xce: case 0xd2: case 0xca: width = 4; break;
    case 0xcf: case 0xd3: case 0xcb: width = 8; break;
    case 0xda: case 0xdc: case 0xde: width = 2; break;
    case 0xdb: case 0xdd: case 0xdf: width = 4; break;
    default: break;
    }
    if (width >= 0) {
        if (cursor->left < (size_t)(1 + width)) {
            cursor->status = READ_TRUNCATED;
            return;
        }
        uint64_t raw = read_big_endian(at + 1, width);
        cursor->bytes += 1 + width;
        cursor->left -= (size_t)(1 + width);
        switch (marker) {
        case 0xc0: lua_pushnil(state); break;
        case 0xc2: lua_pushboolean(state, 0); break;
        case 0xc3: lua_pushboolean(state, 1); break;
        case 0xcc: case 0xcd: case 0xce: lua_pushinteger(state, (lua_Integer)raw); break;
        // An unsigned 64-bit value above INT64_MAX wraps, as lua_pushinteger of it does in 5.1.
        case 0xcf: lua_pushinteger(state, (lua_Integer)(int64_t)raw); break;
        case 0xd0: lua_pushinteger(state, (int8_t)raw); break;
        case 0xd1: lua_pushinteger(state, (int16_t)raw); break;
        case 0xd2: lua_pushinteger(state, (int32_t)raw); break;
        case 0xd3: lua_pushinteger(state, (lua_Integer)(int64_t)raw); break;
        case 0xca: {
            uint32_t bits = (uint32_t)raw;
            float value;
            memcpy(&value, &bits, sizeof value);
            lua_pushnumber(state, value);
            break;
        }
        case 0xcb: {
            double value;
            memcpy(&value, &raw, sizeof value);
            lua_pushnumber(state, value);
            break;
        }
        case 0xd9: case 0xda: case 0xdb:
            if (cursor->left < raw) {
                cursor->status = READ_TRUNCATED;
                return;
            }
            lua_pushlstring(state, (const char *)cursor->bytes, (size_t)raw);
            cursor->bytes += raw;
            cursor->left -= (size_t)raw;
            break;
        case 0xdc: case 0xdd: unpack_collection(state, cursor, raw, 0); break;
        case 0xde: case 0xdf: unpack_collection(state, cursor, raw, 1); break;
        }
        return;
    }
    cursor->bytes += 1;
    cursor->left -= 1;
    if ((marker & 0x80) == 0) {
        lua_pushinteger(state, marker);
    } else if ((marker & 0xe0) == 0xe0) {
        lua_pushinteger(state, (int8_t)marker);
    } else if ((marker & 0xe0) == 0xa0) {
        size_t count = marker & 0x1f;
        if (cursor->left < count) {
            cursor->status = READ_TRUNCATED;
            return;
        }
        lua_pushlstring(state, (const char *)cursor->bytes, count);
        cursor->bytes += count;
        cursor->left -= count;
    } else if ((marker & 0xf0) == 0x90) {
        unpack_collection(state, cursor, marker & 0x0f, 0);
    } else if ((marker & 0xf0) == 0x80) {
        unpack_collection(state, cursor, marker & 0x0f, 1);
    } else {
        cursor->status = READ_BAD_FORMAT;  // bin, ext and the reserved 0xc1
    }
}

/// Decodes up to `limit` values from byte `offset` of argument 1. With neither a limit nor an
/// offset every value is returned; otherwise the offset of the next value comes first (-1 once
/// the input is used up).
static int unpack_values(lua_State *state, int limit, int offset) {
    size_t length;
    const char *input = luaL_checklstring(state, 1, &length);
    // The library's message prints the input length where it names the limit; kept.
    if (offset < 0 || limit < 0) {
        return luaL_error(state, "Invalid request to unpack with offset of %d and limit of %d.",
                          offset, (int)length);
    }
    if ((size_t)offset > length) {
        return luaL_error(state, "Start offset %d greater than input length %d.", offset, (int)length);
    }
    int everything = limit == 0 && offset == 0;
    if (everything) limit = INT_MAX;
    UnpackCursor cursor = {(const unsigned char *)input + offset, length - (size_t)offset, READ_OK};
    int count = 0;
    while (cursor.left > 0 && count < limit) {
        unpack_value(state, &cursor);
        if (cursor.status == READ_TRUNCATED) return luaL_error(state, "Missing bytes in input.");
        if (cursor.status == READ_BAD_FORMAT) return luaL_error(state, "Bad data format in input.");
        count++;
    }
    if (everything) return count;
    lua_pushinteger(state, cursor.left == 0 ? -1 : (lua_Integer)(length - cursor.left));
    lua_insert(state, 2);  // after the input string, before the values
    return count + 1;
}

/// cmsgpack.unpack(s): every value in `s`.
static int msgpack_unpack(lua_State *state) { return unpack_values(state, 0, 0); }

/// cmsgpack.unpack_one(s [, offset]): next offset, one value.
static int msgpack_unpack_one(lua_State *state) {
    int offset = luaL_optint(state, 2, 0);
    lua_settop(state, 1);
    return unpack_values(state, 1, offset);
}

/// cmsgpack.unpack_limit(s, limit [, offset]): next offset, up to `limit` values.
static int msgpack_unpack_limit(lua_State *state) {
    int limit = luaL_checkint(state, 2);
    int offset = luaL_optint(state, 3, 0);
    lua_settop(state, 1);
    return unpack_values(state, limit, offset);
}

int tally_luaopen_cmsgpack(lua_State *state) {
    static const luaL_Reg functions[] = {
        {"pack", msgpack_pack},
        {"unpack", msgpack_unpack},
        {"unpack_one", msgpack_unpack_one},
        {"unpack_limit", msgpack_unpack_limit},
    };
    lua_newtable(state);
    for (size_t index = 0; index < sizeof functions / sizeof functions[0]; index++) {
        lua_pushcfunction(state, functions[index].func);
        lua_setfield(state, -2, functions[index].name);
    }
    // The identification fields scripts can read, as Redis's copy of the library sets them.
    lua_pushliteral(state, "cmsgpack");
    lua_setfield(state, -2, "_NAME");
    lua_pushliteral(state, "lua-cmsgpack 0.4.0");
    lua_setfield(state, -2, "_VERSION");
    lua_pushliteral(state, "Copyright (C) 2012, Salvatore Sanfilippo");
    lua_setfield(state, -2, "_COPYRIGHT");
    lua_pushliteral(state, "MessagePack C implementation for Lua");
    lua_setfield(state, -2, "_DESCRIPTION");
    lua_pushvalue(state, -1);
    lua_setglobal(state, "cmsgpack");
    return 1;
}
