// The Vercel AI SDK (ai + @ai-sdk/openai) as a client of the gateway: openai.chat(...) for Chat Completions,
// openai(...) / openai.responses(...) for the Responses API.
import { createOpenAI } from "@ai-sdk/openai";
import { APICallError, embedMany, generateObject, generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import { gatewayHeaders, input, runAll } from "./harness.mjs";

const { baseURL, clientKey, scopedKey, model, embeddingModel, tool: weather, toolResult, embedInputs, models } = input;
const openai = createOpenAI({ baseURL, apiKey: clientKey });
const wrong = createOpenAI({ baseURL, apiKey: "sk-wrong-key" });
const scoped = createOpenAI({ baseURL, apiKey: scopedKey });
const Person = z.object({ name: z.string(), age: z.number().int(), tags: z.array(z.string()) });
const prompt = "hi";
const usageOf = (u) => [u.inputTokens, u.outputTokens];
const asked = (execute) => ({
  [weather.name]: tool({ description: weather.description, inputSchema: jsonSchema(weather.parameters), ...(execute ? { execute } : {}) }),
});
const firstCall = (calls) => ({ name: calls[0].toolName, arguments: calls[0].input });

async function streamed(m, extra = {}) {
  const r = streamText({ model: m, prompt, maxRetries: 0, ...extra });
  const parts = [];
  for await (const p of r.fullStream) parts.push(p);
  const failure = parts.find((p) => p.type === "error");
  if (failure) throw failure.error;
  return { parts, text: await r.text, usage: usageOf(await r.usage) };
}

async function streamFailure(m) {
  // streamText reports a failure as an `error` part (and to onError), never as a thrown exception.
  const r = streamText({ model: m, prompt, maxRetries: 0, onError: () => {} });
  for await (const p of r.fullStream) {
    if (p.type === "error") return { error: APICallError.isInstance(p.error) ? "APICallError" : p.error?.name ?? "chunk", message: p.error?.message ?? null };
  }
  return { error: null };
}

function failing(provider, m) {
  return async () => {
    try {
      await generateText({ model: provider.chat(m), prompt, maxRetries: 0 });
      return { error: null };
    } catch (err) {
      if (!APICallError.isInstance(err)) throw err;
      return { error: "APICallError", status: err.statusCode, message: err.message };
    }
  };
}

const stepped = (m) => async () => {
  const r = await generateText({ model: m, prompt, tools: asked(async () => toolResult), stopWhen: stepCountIs(3), maxRetries: 0 });
  if (r.steps.length !== 2) throw new Error(`expected 2 steps, got ${r.steps.length}`);
  return r.text;
};

await runAll({
  chat: async () => {
    const r = await generateText({ model: openai.chat(model), prompt, maxRetries: 0 });
    return { content: r.text, usage: usageOf(r.usage) };
  },
  chat_stream_usage: async () => {
    const { text, usage } = await streamed(openai.chat(model));
    return { content: text, usage };
  },
  tools: async () => firstCall((await generateText({ model: openai.chat(model), prompt, tools: asked(), maxRetries: 0 })).toolCalls),
  tools_stream: async () => firstCall((await streamed(openai.chat(model), { tools: asked() })).parts.filter((p) => p.type === "tool-call")),
  tools_multi_step: stepped(openai.chat(model)),
  structured: async () => (await generateObject({ model: openai.chat(model), schema: Person, prompt, maxRetries: 0 })).object,
  embeddings_float: async () => (await embedMany({ model: openai.embedding(embeddingModel), values: embedInputs, maxRetries: 0 })).embeddings,
  responses: async () => {
    const r = await generateText({ model: openai(model), prompt, maxRetries: 0 });
    return { text: r.text, usage: usageOf(r.usage) };
  },
  responses_stream: async () => {
    const { text, usage } = await streamed(openai.responses(model));
    return { text, usage };
  },
  responses_tools: async () => firstCall((await generateText({ model: openai(model), prompt, tools: asked(), maxRetries: 0 })).toolCalls),
  responses_tools_stream: async () =>
    firstCall((await streamed(openai.responses(model), { tools: asked() })).parts.filter((p) => p.type === "tool-call")),
  responses_tools_multi_step: stepped(openai.responses(model)),
  responses_structured: async () => (await generateObject({ model: openai(model), schema: Person, prompt, maxRetries: 0 })).object,
  responses_stream_failure: () => streamFailure(openai.responses(models.midStream)),
  chat_stream_failure: () => streamFailure(openai.chat(models.midStream)),
  error_401: failing(wrong, model),
  error_403: failing(scoped, models.scopedOut),
  error_404: failing(openai, models.unknown),
  error_5xx: failing(openai, models.upstream5xx),
  error_429_retry: async () => ({ content: (await generateText({ model: openai.chat(models.flaky), prompt, maxRetries: 2 })).text }),
  headers: async () => {
    const r = await generateText({ model: openai.chat(model), prompt, maxRetries: 0 });
    return gatewayHeaders((k) => r.response.headers?.[k]);
  },
});
