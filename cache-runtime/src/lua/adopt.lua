-- Replaces a version that a lookup found foreign (written by another server
-- process: it came back with a restart, or travelled with replication or a
-- slot move, and proves nothing here) or missing, with a fresh one, unless a
-- concurrent caller replaced it first. Replacing a version is always safe:
-- it only makes the entries that recorded the old one miss.
--
-- Only the first 33 bytes of the version are read, one more than any version
-- cachette writes: a value planted under its name is never read whole, nor
-- sent back. Those bytes tell whether it is still in place, since every
-- version written in between is shorter, or has another head.
--
-- KEYS[1]  the version
-- ARGV[1]  the first 33 bytes the lookup saw ('' when it saw none, or
--          another type)
-- ARGV[2]  the new value: this server's scope, then a fresh token
-- ARGV[3]  its TTL, in milliseconds
-- Returns the first 33 bytes of the value now in place.
-- Another Redis type under the name (not cachette's) reads as '' and is
-- replaced, as a lookup that found it saw ''.
-- (Checked by the error GETRANGE gives, not with TYPE, which the
-- documented ACL does not grant.)
local now = redis.pcall('GETRANGE', KEYS[1], 0, 32)
if type(now) == 'table' then
  if not string.find(now['err'] or '', '^WRONGTYPE') then
    return redis.error_reply(now['err'] or 'ERR')
  end
  now = ''
end
if now == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return ARGV[2]
end
return now
