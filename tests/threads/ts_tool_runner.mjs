// The TypeScript SDK with default settings (threads on by default), run by test_typescript_sdk.py.
// MODE "runner" (default): the tool runner. Environment: BASE_URL, API_KEY, MODEL, TURNS, STREAM ("1"/"0"),
// DISRUPT ("none" | "idle" | "continued"), CONTROL (the gateway's test hook URL for "idle"). Prints {"final": text}.
// MODE "thread": the explicit thread helper, two turns, the second with another `output_config` (CHANGE "1") or
// not. Prints {"raised": <error class name or null>, "status": <HTTP status or null>}.
import Anthropic from '@anthropic-ai/sdk';
import { betaTool } from '@anthropic-ai/sdk/helpers/beta/json-schema';

const env = process.env;
const turns = Number(env.TURNS);
const stream = env.STREAM === '1';
const client = new Anthropic({ baseURL: env.BASE_URL, apiKey: env.API_KEY, maxRetries: 0 });

const step = betaTool({
  name: 'step',
  description: 'Take step number n.',
  inputSchema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
  run: async (input) => `r${input.n}`,
});

let held = null; // a continue from outside the runner, still running while the runner goes on

function continueFromOutside(message) {
  const tool = message.content.find((b) => b.type === 'tool_use');
  return fetch(`${env.BASE_URL}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': env.API_KEY },
    body: JSON.stringify({
      model: env.MODEL,
      max_tokens: 64,
      thread: { type: 'continue', previous_message_id: message.id },
      messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: tool.id, content: 'elsewhere' }] }],
    }),
  });
}

async function disrupt(message) {
  if (env.DISRUPT === 'idle') {
    await fetch(`${env.CONTROL}?idle`, { method: 'POST' });
  } else if (env.DISRUPT === 'continued') {
    const reply = await continueFromOutside(message);
    if (reply.status !== 200) throw new Error(`the outside continue failed: ${reply.status}`);
  } else if (env.DISRUPT === 'in_flight') {
    await fetch(`${env.CONTROL}?slow`, { method: 'POST' }); // the next upstream answer takes a while
    held = continueFromOutside(message);
    await fetch(`${env.CONTROL}?wait`, { method: 'POST' }); // until that continue waits on the upstream
  }
}

if (env.MODE === 'thread') {
  const thread = client.beta.messages.thread({ model: env.MODEL, max_tokens: 64, output_config: { effort: 'low' } });
  try {
    await thread.send({ role: 'user', content: 'Hello' });
    // The types leave `output_config` out of a turn's params; at run time it reaches the server.
    await thread.send({ role: 'user', content: 'Again' }, env.CHANGE === '1' ? { output_config: { effort: 'high' } } : {});
    console.log(JSON.stringify({ raised: null, status: null }));
  } catch (e) {
    console.log(JSON.stringify({ raised: e.constructor.name, status: e.status ?? null }));
  }
  process.exit(0);
}

const runner = client.beta.messages.toolRunner({
  model: env.MODEL,
  max_tokens: 256,
  system: 'Be terse.',
  tools: [step],
  messages: [{ role: 'user', content: `Please call \`step\` ${turns} times` }],
  stream,
});
let seen = 0;
for await (const item of runner) {
  const message = stream ? await item.finalMessage() : item;
  seen += 1;
  if (seen === 3) await disrupt(message);
}
const final = await runner.runUntilDone();
if (held !== null) await (await held).text();
console.log(JSON.stringify({ final: final.content[0].text }));
