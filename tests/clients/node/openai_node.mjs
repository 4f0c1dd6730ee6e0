// The official OpenAI Node SDK as a client of the gateway.
import OpenAI from "openai";
import { zodResponseFormat, zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";
import { gatewayHeaders, input, responsesFailure, runAll } from "./harness.mjs";

const { baseURL, clientKey, scopedKey, model, embeddingModel, tool, toolResult, personSchema, embedInputs, models } = input;
const client = new OpenAI({ baseURL, apiKey: clientKey, maxRetries: 0 });
const wrong = new OpenAI({ baseURL, apiKey: "sk-wrong-key", maxRetries: 0 });
const scoped = new OpenAI({ baseURL, apiKey: scopedKey, maxRetries: 0 });
const MSG = [{ role: "user", content: "hi" }];
const TOOLS = [{ type: "function", function: tool }];
const Person = z.object({ name: z.string(), age: z.number().int(), tags: z.array(z.string()) });
const usageOf = (u) => (u == null ? null : "input_tokens" in u ? [u.input_tokens, u.output_tokens] : [u.prompt_tokens, u.completion_tokens]);
const toolCall = (name, args) => ({ name, arguments: JSON.parse(args) });

async function streamed(extra) {
  let content = "", usage = null;
  for await (const ch of await client.chat.completions.create({ model, messages: MSG, stream: true, ...extra })) {
    content += ch.choices[0]?.delta?.content ?? "";
    if (ch.usage) usage = usageOf(ch.usage);
  }
  return { content, usage };
}

function failing(c, m) {
  return async () => {
    try {
      await c.chat.completions.create({ model: m, messages: MSG });
      return { error: null };
    } catch (err) {
      if (!(err instanceof OpenAI.APIError)) throw err;
      const message = err.error?.message;
      if (!err.message.includes(message)) throw new Error(`message ${JSON.stringify(err.message)} lacks ${message}`);
      return { error: err.constructor.name, status: err.status, message };
    }
  };
}

await runAll({
  chat: async () => {
    const r = await client.chat.completions.create({ model, messages: MSG });
    return { content: r.choices[0].message.content, usage: usageOf(r.usage) };
  },
  chat_stream: () => streamed({}),
  chat_stream_usage: () => streamed({ stream_options: { include_usage: true } }),
  chat_n2: async () => {
    const r = await client.chat.completions.create({ model, messages: MSG, n: 2 });
    return [...r.choices].sort((a, b) => a.index - b.index).map((c) => c.message.content);
  },
  logprobs: async () => {
    const r = await client.chat.completions.create({ model, messages: MSG, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0].logprobs?.content ?? [];
    return { text: content.map((t) => t.token).join(""), top: content.map((t) => t.top_logprobs.length) };
  },
  tools: async () => {
    const call = (await client.chat.completions.create({ model, messages: MSG, tools: TOOLS })).choices[0].message.tool_calls[0];
    return toolCall(call.function.name, call.function.arguments);
  },
  tools_stream: async () => {
    let name = "", args = "";
    for await (const ch of await client.chat.completions.create({ model, messages: MSG, tools: TOOLS, stream: true })) {
      for (const d of ch.choices[0]?.delta?.tool_calls ?? []) {
        name += d.function?.name ?? "";
        args += d.function?.arguments ?? "";
      }
    }
    return toolCall(name, args);
  },
  tools_multi_step: async () => {
    const first = (await client.chat.completions.create({ model, messages: MSG, tools: TOOLS })).choices[0].message;
    const follow = [...MSG, first, { role: "tool", tool_call_id: first.tool_calls[0].id, content: toolResult }];
    return (await client.chat.completions.create({ model, messages: follow, tools: TOOLS })).choices[0].message.content;
  },
  structured: async () => {
    const r = await client.chat.completions.parse({ model, messages: MSG, response_format: zodResponseFormat(Person, "person") });
    const raw = await client.chat.completions.create({ model, messages: MSG,
      response_format: { type: "json_schema", json_schema: { name: "person", schema: personSchema, strict: true } } });
    const parsed = r.choices[0].message.parsed;
    if (JSON.stringify(JSON.parse(raw.choices[0].message.content)) !== JSON.stringify(parsed)) throw new Error("raw and parsed differ");
    return parsed;
  },
  embeddings_float: async () =>
    (await client.embeddings.create({ model: embeddingModel, input: embedInputs, encoding_format: "float" })).data.map((d) => d.embedding),
  embeddings_base64: async () =>
    // the SDK asks for base64 by default and decodes it
    (await client.embeddings.create({ model: embeddingModel, input: embedInputs })).data.map((d) => d.embedding),
  responses: async () => {
    const r = await client.responses.create({ model, input: "hi" });
    return { text: r.output_text, usage: usageOf(r.usage) };
  },
  responses_stream: async () => {
    const events = [];
    for await (const e of await client.responses.create({ model, input: "hi", stream: true })) events.push(e);
    const done = events[events.length - 1];
    if (done.type !== "response.completed") throw new Error(`stream ended with ${done.type}`);
    if (events.some((e, i) => e.sequence_number !== i)) throw new Error("sequence numbers do not count from 0");
    return { text: events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join(""), usage: usageOf(done.response.usage) };
  },
  responses_tools: async () => {
    const out = (await client.responses.create({ model, input: "hi", tools: [{ type: "function", ...tool }] })).output;
    const call = out.find((o) => o.type === "function_call");
    return toolCall(call.name, call.arguments);
  },
  responses_tools_stream: async () => {
    const events = [];
    for await (const e of await client.responses.create({ model, input: "hi", tools: [{ type: "function", ...tool }], stream: true })) events.push(e);
    const added = events.find((e) => e.type === "response.output_item.added").item;
    const args = events.filter((e) => e.type === "response.function_call_arguments.delta").map((e) => e.delta).join("");
    return toolCall(added.name, args);
  },
  responses_tools_multi_step: async () => {
    const tools = [{ type: "function", ...tool }];
    const first = await client.responses.create({ model, input: "hi", tools });
    const call = first.output.find((o) => o.type === "function_call");
    const follow = [{ role: "user", content: "hi" }, ...first.output, { type: "function_call_output", call_id: call.call_id, output: toolResult }];
    return (await client.responses.create({ model, input: follow, tools })).output_text;
  },
  responses_structured: async () =>
    (await client.responses.parse({ model, input: "hi", text: { format: zodTextFormat(Person, "person") } })).output_parsed,
  responses_stream_failure: async () => {
    const events = [];
    for await (const e of await client.responses.create({ model: models.midStream, input: "hi", stream: true })) events.push(e);
    return responsesFailure(events);
  },
  chat_stream_failure: async () => {
    try {
      for await (const _ of await client.chat.completions.create({ model: models.midStream, messages: MSG, stream: true }));
      return { error: null };
    } catch (err) {
      return { error: err.constructor.name, message: err.message };
    }
  },
  error_401: failing(wrong, model),
  error_403: failing(scoped, models.scopedOut),
  error_404: failing(client, models.unknown),
  error_5xx: failing(client, models.upstream5xx),
  error_429_retry: async () => {
    const r = await client.chat.completions.create({ model: models.flaky, messages: MSG }, { maxRetries: 2 });
    return { content: r.choices[0].message.content };
  },
  models: async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    return ids.sort();
  },
  headers: async () => {
    const { response } = await client.chat.completions.create({ model, messages: MSG }).withResponse();
    return gatewayHeaders((k) => response.headers.get(k));
  },
});
