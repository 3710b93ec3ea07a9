// The README's snippet ("Busting from TypeScript"): a Next.js app on
// @upstash/redis invalidates keys and tags that a Rust service caches with
// cachette in the same database. The README quotes this file from the line
// after the scissors to the end; a test checks they agree. `run.mjs` runs it.
// ---8<---
import { Redis } from "@upstash/redis";

/**
 * Invalidates cachette keys and tags: gives each one's version a fresh
 * random value, so every entry filed under it misses from now on, in every
 * process. `namespace` is the cache's (`cachette` unless set). Keys and
 * tags must be 1 to 200 bytes and not start with `}`: longer ones are
 * stored under a digest, so bust those from Rust.
 */
export async function bustCachette(
  redis: Redis,
  namespace: string,
  {
    keys = [],
    tags = [],
    assumeLeaseReaders = false,
  }: { keys?: string[]; tags?: string[]; assumeLeaseReaders?: boolean },
): Promise<void> {
  const month = 30 * 24 * 3600 * 1000;
  const p = redis.pipeline();
  for (const key of keys) p.set(`${namespace}:k:{${key}}`, crypto.randomUUID(), { px: month });
  for (const tag of tags) p.set(`${namespace}:t:{${tag}}`, crypto.randomUUID(), { px: month });
  // Services that serve hits under a lease (`near_cache_lease`) need every
  // bust to wait it out once Redis has it: the namespace's lease (µs), or
  // the longest while it is young (made again after a loss, when a larger
  // one may still be in use). Where readers use a lease, pass
  // `assumeLeaseReaders`: a missing lease is then taken for a lost one.
  const lease = `${namespace}:a:{lease}`;
  p.getrange(lease, 0, 31);
  p.pttl(lease);
  const replies = await p.exec();
  const [value, ttl] = replies.slice(-2) as [unknown, number];
  const longest = 1_048_575;
  const us = /^[0-9]{1,7}$/.test(String(value)) ? Number(value) : 0;
  let micros = assumeLeaseReaders ? longest : 0;
  if (ttl === -1 || ttl > month || (ttl >= 0 && month - ttl < 2_200)) micros = longest;
  else if (ttl >= 0 && us > 0) micros = Math.min(us, longest);
  if (micros > 0) {
    await new Promise((done) => setTimeout(done, Math.ceil((micros * 1.002) / 1000) + 1));
  }
}
