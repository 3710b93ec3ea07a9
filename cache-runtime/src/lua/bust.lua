-- Invalidates keys and tags in one round trip, whatever the number of entries
-- under them: each version key gets a fresh random token, so every entry that
-- recorded the old token stops matching. Entries are left to expire: they
-- belong to functions the invalidation does not know.
--
-- KEYS[1..n]   version keys to replace (keys' versions, then tags')
-- ARGV[1]      TTL of the new versions, in milliseconds
-- ARGV[2..]    the new tokens, one per version key, in KEYS order
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1])
end
return #KEYS
