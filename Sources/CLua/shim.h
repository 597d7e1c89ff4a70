// CLua: Debian's Lua 5.1 (liblua5.1-0-dev, the Lua version Redis embeds) plus the few inline helpers
// Swift needs: the C API's function-like macros are not imported, and a Lua error must be raised
// (longjmp) from C, never across Swift frames.
#ifndef TALLY_CLUA_SHIM_H
#define TALLY_CLUA_SHIM_H

#include <lua5.1/lua.h>
#include <lua5.1/lauxlib.h>
#include <lua5.1/lualib.h>
#include <stdio.h>

/// Debian's lua-cjson-dev (liblua5.1-cjson.a) and lua-bitop-dev (liblua5.1-bitop.a).
int luaopen_cjson(lua_State *state);
int luaopen_bit(lua_State *state);

/// A Swift function callable from Lua. Returns the number of results it pushed, or -1 after
/// pushing an error value that the trampoline raises once the Swift frame has returned.
typedef int (*tally_lua_function)(lua_State *state, int selector);

static inline int tally_lua_trampoline(lua_State *state) {
    tally_lua_function body = (tally_lua_function)lua_touserdata(state, lua_upvalueindex(1));
    int selector = (int)lua_tointeger(state, lua_upvalueindex(2));
    int results = body(state, selector);
    if (results < 0) return lua_error(state);
    return results;
}

/// Pushes a Lua closure that calls `body(state, selector)`.
static inline void tally_lua_push_function(lua_State *state, tally_lua_function body, int selector) {
    lua_pushlightuserdata(state, (void *)body);
    lua_pushinteger(state, selector);
    lua_pushcclosure(state, tally_lua_trampoline, 2);
}

/// Opens one standard library under `name` (as luaL_openlibs does for each, without io/os/package).
static inline void tally_lua_open_library(lua_State *state, lua_CFunction opener, const char *name) {
    lua_pushcfunction(state, opener);
    lua_pushstring(state, name);
    lua_call(state, 1, 0);
}

static inline void tally_lua_pop(lua_State *state, int count) { lua_settop(state, -(count) - 1); }

/// `(long long)lua_tonumber(...)`: C's truncating conversion, which Redis applies to a Lua number
/// it replies as an integer (a Swift Int64(_:) would trap on NaN or out-of-range values).
static inline long long tally_lua_number_as_integer(lua_State *state, int index) {
    double number = lua_tonumber(state, index);
    if (number != number) return (long long)0x8000000000000000ULL;
    if (number >= 9223372036854775808.0 || number < -9223372036854775808.0) return (long long)0x8000000000000000ULL;
    return (long long)number;
}

/// `%.17g`, as Redis formats a Lua number passed to redis.call and a double reply.
static inline int tally_format_double(double value, char *buffer, int capacity) {
    return snprintf(buffer, (size_t)capacity, "%.17g", value);
}

/// `%.14g`, Lua 5.1's own number-to-string format (LUA_NUMBER_FMT).
static inline int tally_format_lua_number(double value, char *buffer, int capacity) {
    return snprintf(buffer, (size_t)capacity, LUA_NUMBER_FMT, value);
}

/// LUA_REGISTRYINDEX and LUA_GLOBALSINDEX (parenthesised macros Swift does not import reliably).
static inline int tally_lua_registry_index(void) { return LUA_REGISTRYINDEX; }
static inline int tally_lua_globals_index(void) { return LUA_GLOBALSINDEX; }

/// The Swift side of the count hook: returns 0 to let the script go on, or a non-zero verdict
/// after pushing the error value the hook raises (SCRIPT KILL, FUNCTION LOAD timeout).
typedef int (*tally_lua_hook_body)(lua_State *state);

/// The count hook (Redis's luaMaskCountHook): asks the body kept in the registry under
/// `tally.hook`; on a verdict it re-arms itself on every line, so a script that catches the
/// error with pcall meets it again at once, and raises the error from C (never across Swift).
static inline void tally_lua_hook(lua_State *state, lua_Debug *debug) {
    (void)debug;
    lua_getfield(state, LUA_REGISTRYINDEX, "tally.hook");
    tally_lua_hook_body body = (tally_lua_hook_body)lua_touserdata(state, -1);
    lua_settop(state, -2);
    if (body == NULL || body(state) == 0) return;
    lua_sethook(state, tally_lua_hook, LUA_MASKLINE, 0);
    lua_error(state);
}

/// Keeps `body` in the registry for `tally_lua_hook`.
static inline void tally_lua_set_hook_body(lua_State *state, tally_lua_hook_body body) {
    lua_pushlightuserdata(state, (void *)body);
    lua_setfield(state, LUA_REGISTRYINDEX, "tally.hook");
}

/// Arms the hook every `count` VM instructions (Redis uses 100000).
static inline void tally_lua_arm_hook(lua_State *state, int count) {
    lua_sethook(state, tally_lua_hook, LUA_MASKCOUNT, count);
}

/// Removes the hook.
static inline void tally_lua_disarm_hook(lua_State *state) { lua_sethook(state, NULL, 0, 0); }

#endif
