// CLuaLibraries: the two Lua libraries Redis 7.0 loads into its scripting environment that Debian
// does not ship for Lua 5.1 (cmsgpack and struct), written for Tally in C: they run inside the Lua
// interpreter and raise Lua errors (longjmp), which must never cross Swift frames.
#ifndef TALLY_CLUA_LIBRARIES_H
#define TALLY_CLUA_LIBRARIES_H

#include <lua5.1/lua.h>

/// `cmsgpack`: pack, unpack, unpack_one, unpack_limit, as Redis's scripting environment offers them
/// (MessagePack, https://github.com/msgpack/msgpack/blob/master/spec.md). Leaves the table on the
/// stack and sets the global.
int tally_luaopen_cmsgpack(lua_State *state);

/// `struct`: pack, unpack, size (Roberto Ierusalimschy's struct library's format language, as
/// documented for Redis scripts). Leaves the table on the stack and sets the global.
int tally_luaopen_struct(lua_State *state);

#endif
