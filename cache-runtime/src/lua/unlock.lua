-- Releases a stampede lock only if the caller still owns it, so a holder
-- that outlived its lock cannot delete the lock another caller now holds.
--
-- KEYS[1]  the lock key
-- ARGV[1]  the token the caller locked with
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
