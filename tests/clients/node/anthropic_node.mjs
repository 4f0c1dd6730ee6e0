// The official Anthropic Node SDK (@anthropic-ai/sdk) as a client of the gateway: each scenario against a model
// served natively by an Anthropic backend and one served through translation by an OpenAI-compatible backend.
import Anthropic from "@anthropic-ai/sdk";
import { input, runAll } from "./harness.mjs";

const { baseURL, key, scopedKey, limitedKey, native, translated, tool, toolResult } = input;
const client = new Anthropic({ baseURL, apiKey: key, maxRetries: 0 });
const HI = [{ role: "user", content: "hi" }];
const ASK = [{ role: "user", content: "Weather in Paris?" }];
const textOf = (m) => m.content.filter((b) => b.type === "text").map((b) => b.text).join("");
const usageOf = (m) => [m.usage.input_tokens, m.usage.output_tokens];

function failing(c, params) {
  return async () => {
    try {
      await c.messages.create({ max_tokens: 8, messages: HI, ...params });
      return { error: null };
    } catch (err) {
      if (!(err instanceof Anthropic.APIError)) throw err;
      return { error: err.constructor.name, status: err.status, type: err.error?.error?.type ?? null };
    }
  };
}

function perModel(model) {
  return {
    [`create:${model}`]: async () => {
      const m = await client.messages.create({ model, max_tokens: 64, messages: HI });
      return { text: textOf(m), usage: usageOf(m), stop_reason: m.stop_reason, model: m.model };
    },
    [`stream:${model}`]: async () => {
      const s = client.messages.stream({ model, max_tokens: 64, messages: HI });
      let text = "";
      s.on("text", (t) => (text += t));
      const m = await s.finalMessage();
      return { text, final: textOf(m), usage: usageOf(m), stop_reason: m.stop_reason };
    },
    [`raw_stream:${model}`]: async () => {
      const events = [];
      for await (const ev of await client.messages.create({ model, max_tokens: 64, messages: HI, stream: true })) events.push(ev.type);
      return { first: events[0], last: events[events.length - 1], message_delta: events.includes("message_delta") };
    },
    [`tools:${model}`]: async () => {
      const first = await client.messages.create({ model, max_tokens: 256, messages: ASK, tools: [tool] });
      const call = first.content.find((b) => b.type === "tool_use");
      const second = await client.messages.create({
        model,
        max_tokens: 256,
        tools: [tool],
        messages: [...ASK, { role: "assistant", content: first.content }, { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: toolResult }] }],
      });
      return { stop_reason: first.stop_reason, call: { name: call.name, input: call.input }, after: textOf(second) };
    },
    [`stream_tools:${model}`]: async () => {
      const s = client.messages.stream({ model, max_tokens: 256, messages: ASK, tools: [tool], tool_choice: { type: "tool", name: tool.name } });
      const m = await s.finalMessage();
      const call = m.content.find((b) => b.type === "tool_use");
      return { stop_reason: m.stop_reason, call: { name: call.name, input: call.input } };
    },
    [`count_tokens:${model}`]: async () => {
      const n = await client.messages.countTokens({ model, messages: [{ role: "user", content: "How many tokens?" }] });
      return { positive: n.input_tokens > 0 };
    },
    [`headers:${model}`]: async () => {
      const { response } = await client.messages.create({ model, max_tokens: 8, messages: HI }).withResponse();
      return { backend: response.headers.get("x-pointsman-backend"), model: response.headers.get("x-pointsman-model"), cost: response.headers.get("x-pointsman-cost-usd") != null };
    },
  };
}

await runAll({
  ...perModel(native),
  ...perModel(translated),
  wrong_key: failing(new Anthropic({ baseURL, apiKey: "sk-wrong", maxRetries: 0 }), { model: native }),
  unknown_model: failing(client, { model: "no-such-model" }),
  out_of_scope: failing(new Anthropic({ baseURL, apiKey: scopedKey, maxRetries: 0 }), { model: translated }),
  untranslatable: failing(client, { model: translated, max_tokens: 4096, thinking: { type: "enabled", budget_tokens: 2048 } }),
  overloaded: failing(client, { model: "claude-overloaded" }),
  rate_limited: async () => {
    const limited = new Anthropic({ baseURL, apiKey: limitedKey, maxRetries: 0 });
    await limited.messages.create({ model: native, max_tokens: 8, messages: HI });
    return failing(limited, { model: native })();
  },
  stream_failure: async () => {
    try {
      await client.messages.stream({ model: "claude-midstream", max_tokens: 64, messages: HI }).finalMessage();
      return { error: null };
    } catch (err) {
      return { error: err.constructor.name, type: err.error?.error?.type ?? null };
    }
  },
});
