// Upstash's own TypeScript SDK against cachette's REST protocol server
// (tests/rest-server), at UPSTASH_REDIS_REST_URL with
// UPSTASH_REDIS_REST_TOKEN: what the official client sends and expects,
// not only what cachette's backend does. Exits non-zero on the first
// mismatch. Run by the suite's `the_official_sdk_speaks_to_the_protocol_server`.
import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";

const url = process.env.UPSTASH_REDIS_REST_URL;
const token = process.env.UPSTASH_REDIS_REST_TOKEN;
const redis = new Redis({ url, token, retry: false, enableTelemetry: false });

// GET and SET, text that is not ASCII, values the SDK serializes as JSON.
assert.equal(await redis.set("sdk:text", "héllo ✓"), "OK");
assert.equal(await redis.get("sdk:text"), "héllo ✓");
assert.equal(await redis.get("sdk:missing"), null);
await redis.set("sdk:json", { a: 1, b: [true, null] });
assert.deepEqual(await redis.get("sdk:json"), { a: 1, b: [true, null] });
assert.equal(await redis.set("sdk:nx", "1", { nx: true, px: 60000 }), "OK");
assert.equal(await redis.set("sdk:nx", "2", { nx: true, px: 60000 }), null);
assert.deepEqual(await redis.mget("sdk:text", "sdk:missing"), ["héllo ✓", null]);

// A pipeline: replies in order, and a failed command reported as such.
const p = redis.pipeline();
p.set("sdk:n", 1);
p.incr("sdk:n");
p.get("sdk:n");
p.incr("sdk:text");
const replies = await p.exec({ keepErrors: true });
assert.deepEqual(replies.slice(0, 3).map((r) => r.result), ["OK", 2, 2]);
assert.match(replies[3].error, /ERR/);
await assert.rejects(
  (() => {
    const q = redis.pipeline();
    q.incr("sdk:text");
    return q.exec();
  })(),
  /failed: ERR/,
);

// Transactions (`/multi-exec`).
const tx = redis.multi();
tx.set("sdk:m", 5);
tx.incrby("sdk:m", 2);
assert.deepEqual(await tx.exec(), ["OK", 7]);

// Scripts: EVAL, SCRIPT LOAD, EVALSHA, and NOSCRIPT for an unknown one.
assert.deepEqual(await redis.eval("return {KEYS[1], ARGV[1]}", ["k1"], ["a1"]), ["k1", "a1"]);
const sha = await redis.scriptLoad("return ARGV[1] .. '!'");
assert.equal(await redis.evalsha(sha, [], ["x"]), "x!");
await assert.rejects(redis.evalsha("0".repeat(40), [], []), /NOSCRIPT/);

// Errors of single commands.
await assert.rejects(redis.incr("sdk:text"), /ERR/);
const stranger = new Redis({ url, token: "not-the-token", retry: false, enableTelemetry: false });
await assert.rejects(stranger.get("sdk:text"), /Unauthorized/);

// Automatic pipelining: concurrent commands in one request.
const batched = new Redis({ url, token, retry: false, enableTelemetry: false, enableAutoPipelining: true });
const many = await Promise.all([1, 2, 3].map((i) => batched.incrby("sdk:auto", i)));
assert.equal(Math.max(...many), 6);

// The token as `_token`, and replies without base64.
const res = await fetch(`${url}/?_token=${encodeURIComponent(token)}`, {
  method: "POST",
  body: JSON.stringify(["ECHO", "plain"]),
});
assert.equal(res.status, 200);
assert.deepEqual(await res.json(), { result: "plain" });

console.log("the SDK's checks passed");
