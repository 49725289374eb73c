//! The Lua scripts that change the cluster's state in Redis, each in one step.

/// Appends events; a message without a preset id gets the next id. Returns the ids, and
/// with ARGV[2] > 0 the end of a fresh block of that many ids reserved after them.
pub(super) const APPEND: &str = r"
local out = {}
local i = 3
while i <= #ARGV do
  local id = tonumber(ARGV[i])
  if id == 0 and ARGV[i + 1] == 'm' then id = redis.call('INCR', KEYS[2]) end
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
    'id', id, 'n', ARGV[i + 2], 'l', ARGV[i + 3], 'e', ARGV[i + 4])
  local side, nick, arg = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  if side == 'join' then redis.call('SADD', 'chat:rooms:' .. nick, arg) end
  if side == 'leave' then redis.call('SREM', 'chat:rooms:' .. nick, arg) end
  if side == 'user' then redis.call('HSETNX', 'chat:known', nick, arg) end
  if side == 'reg' then redis.call('HSET', 'chat:passwords', nick, arg) end
  out[#out + 1] = id
  i = i + 8
end
if ARGV[2] ~= '0' then out[#out + 1] = redis.call('INCRBY', KEYS[2], ARGV[2]) end
return out
";

/// Claims a nickname for a node: refused (the owner's name is returned) while another live
/// node has it, unless ARGV[6] is '1' (a registered user's further session: `+` is returned);
/// taken over from an away user or a dead node, and announced in the log. A name the node
/// holds already (its user back within the grace period, or registered again after an
/// outage) is only marked present again. `chat:where:<nick>` keeps every node with a session.
pub(super) const CLAIM: &str = r"
local nick, node = ARGV[1], ARGV[2]
local owner = redis.call('HGET', KEYS[1], nick)
local moved = '0'
if owner then
  local name, away = owner, false
  if string.sub(owner, -5) == '|away' then name, away = string.sub(owner, 1, -6), true end
  if name == node then
    redis.call('HSET', KEYS[1], nick, node)
    redis.call('SADD', 'chat:users:' .. node, nick)
    redis.call('SADD', 'chat:where:' .. nick, node)
    return ''
  end
  if not away and redis.call('EXISTS', 'chat:node:' .. name) == 1 then
    if ARGV[6] ~= '1' then return name end
    redis.call('SADD', 'chat:users:' .. node, nick)
    redis.call('SADD', 'chat:where:' .. nick, node)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'id', 0, 'n', node, 'l', 0, 'e', ARGV[5])
    return '+'
  end
  moved = '1'
  redis.call('SREM', 'chat:users:' .. name, nick)
  redis.call('SREM', 'chat:where:' .. nick, name)
end
redis.call('HSET', KEYS[1], nick, node)
redis.call('SADD', 'chat:users:' .. node, nick)
redis.call('SADD', 'chat:where:' .. nick, node)
if moved == '0' then redis.call('DEL', 'chat:rooms:' .. nick) end
local body = ARGV[4]
if moved == '1' then body = ARGV[5] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'id', 0, 'n', node, 'l', 0, 'e', body)
return ''
";

/// Marks a node's user as away (presence grace): another node may take the name over. When
/// the user has a session on another node too, that node holds the name from now on.
pub(super) const AWAY: &str = r"
local nick, node = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[1], nick) == node then
  redis.call('SREM', 'chat:where:' .. nick, node)
  local other = redis.call('SRANDMEMBER', 'chat:where:' .. nick)
  if other then
    redis.call('HSET', KEYS[1], nick, other)
    redis.call('SREM', 'chat:users:' .. node, nick)
  else
    redis.call('SADD', 'chat:where:' .. nick, node)
    redis.call('HSET', KEYS[1], nick, node .. '|away')
  end
end
return 0
";

/// Releases a node's user and announces them offline, unless they are on another node.
pub(super) const RELEASE: &str = r"
local nick, node = ARGV[1], ARGV[2]
local owner = redis.call('HGET', KEYS[1], nick)
redis.call('SREM', 'chat:users:' .. node, nick)
redis.call('SREM', 'chat:where:' .. nick, node)
if owner == node or owner == node .. '|away' then
  local other = redis.call('SRANDMEMBER', 'chat:where:' .. nick)
  if other then
    redis.call('HSET', KEYS[1], nick, other)
    return 0
  end
  redis.call('HDEL', KEYS[1], nick)
  redis.call('DEL', 'chat:rooms:' .. nick)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'id', 0, 'n', node, 'l', 0, 'e', ARGV[4])
  return 1
end
return 0
";

/// Removes dead nodes (or the node in ARGV[3], dead or not) and announces their users
/// offline, unless they have a session on another node; returns how many nodes went.
pub(super) const REAP: &str = r#"
local reaped = 0
local nodes = redis.call('SMEMBERS', KEYS[1])
if ARGV[3] ~= '' then nodes = {ARGV[3]} end
for _, node in ipairs(nodes) do
  if ARGV[3] ~= '' or redis.call('EXISTS', 'chat:node:' .. node) == 0 then
    for _, nick in ipairs(redis.call('SMEMBERS', 'chat:users:' .. node)) do
      redis.call('SREM', 'chat:where:' .. nick, node)
      local owner = redis.call('HGET', KEYS[2], nick)
      if not owner or owner == node or owner == node .. '|away' then
        local other = redis.call('SRANDMEMBER', 'chat:where:' .. nick)
        if other then
          redis.call('HSET', KEYS[2], nick, other)
        else
          if owner then redis.call('HDEL', KEYS[2], nick) end
          redis.call('DEL', 'chat:rooms:' .. nick)
          local body = '{"k":"offline","nick":' .. cjson.encode(nick) .. ',"ts":' .. ARGV[2] .. '}'
          redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'id', 0, 'n', node, 'l', 0, 'e', body)
        end
      end
    end
    redis.call('DEL', 'chat:users:' .. node)
    redis.call('SREM', KEYS[1], node)
    reaped = reaped + 1
  end
end
return reaped
"#;

/// Who is online where, with their rooms, and the log position this view is as of.
pub(super) const SNAPSHOT: &str = r"
local out = {}
local online = redis.call('HGETALL', KEYS[1])
for i = 1, #online, 2 do
  out[#out + 1] = {online[i], online[i + 1], redis.call('SMEMBERS', 'chat:rooms:' .. online[i])}
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local cursor = '0-0'
if #last > 0 then cursor = last[1][1] end
return {cursor, out}
";

/// Raises the id counter to at least ARGV[1] (after Redis lost its data, say).
pub(super) const ENSURE_IDS: &str = r"
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if now < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
";
