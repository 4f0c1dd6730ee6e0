// Runs one client's scenarios against the gateway and prints {scenario: observed} as JSON on stdout.
// The inputs (URL, keys, models, schemas) come from the MATRIX_INPUT environment variable, written by
// tests/clients/test_node.py from tests/clients/expected.py: one definition for every client.

export const input = JSON.parse(process.env.MATRIX_INPUT ?? "{}");

export async function runAll(scenarios) {
  const out = {};
  for (const [name, fn] of Object.entries(scenarios)) {
    try {
      out[name] = await fn();
    } catch (err) {
      out[name] = { unexpected: `${err?.name ?? typeof err}: ${err?.message ?? String(err)}`, where: String(err?.stack ?? "").split("\n").slice(0, 4).join("\n") };
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

export function gatewayHeaders(get) {
  return {
    "x-pointsman-route": get("x-pointsman-route") ?? null,
    "x-pointsman-backend": get("x-pointsman-backend") ?? null,
    "x-pointsman-model": get("x-pointsman-model") ?? null,
    cost: get("x-pointsman-cost-usd") != null,
  };
}

export function responsesFailure(events) {
  // A Responses stream that failed mid-way ends with an `error` event whose sequence number continues.
  const last = events[events.length - 1];
  if (last?.type !== "error") return { event: last?.type ?? null };
  const prev = events[events.length - 2];
  return { event: "error", message: last.message, sequence_number_follows: prev != null && last.sequence_number === prev.sequence_number + 1 };
}
