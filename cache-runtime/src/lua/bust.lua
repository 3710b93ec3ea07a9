-- Invalidates keys and tags in one round trip, whatever the number of entries
-- under them: each version key gets a fresh random token (so every entry that
-- recorded the old token stops matching), and the entries of busted keys are
-- dropped to free their memory.
--
-- KEYS[1..n]   version keys to bump (busted keys' versions, then tags')
-- KEYS[n+1..]  entry keys to delete
-- ARGV[1]      n
-- ARGV[2]      TTL of the new versions, in milliseconds
-- ARGV[3..]    the new tokens, one per version key, in KEYS order
local n = tonumber(ARGV[1])
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ARGV[2])
end
for i = n + 1, #KEYS do
  redis.call('DEL', KEYS[i])
end
return n
