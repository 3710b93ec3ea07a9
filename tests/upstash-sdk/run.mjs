// Runs the README's snippet (compiled from bust.ts into build/):
// `node run.mjs <namespace> [--key K] [--tag T] [--assume 1] ...`, against the database
// named by UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN.
import { Redis } from "@upstash/redis";
import { bustCachette } from "./build/bust.js";

const [namespace, ...rest] = process.argv.slice(2);
const keys = [];
const tags = [];
let assumeLeaseReaders = false;
for (let i = 0; i + 1 < rest.length; i += 2) {
  if (rest[i] === "--assume") assumeLeaseReaders = true;
  else (rest[i] === "--key" ? keys : tags).push(rest[i + 1]);
}
await bustCachette(Redis.fromEnv(), namespace, { keys, tags, assumeLeaseReaders });
