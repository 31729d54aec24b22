// The TypeScript SDK's tool runner with default settings (threads on by default), run by test_typescript_sdk.py.
// Environment: BASE_URL, API_KEY, MODEL, TURNS, STREAM ("1"/"0"), DISRUPT ("none" | "idle" | "continued"),
// CONTROL (the gateway's test hook URL for "idle"). Prints {"final": <text>} as its last line.
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

async function disrupt(message) {
  if (env.DISRUPT === 'idle') {
    await fetch(env.CONTROL, { method: 'POST' });
  } else if (env.DISRUPT === 'continued') {
    const tool = message.content.find((b) => b.type === 'tool_use');
    const reply = await fetch(`${env.BASE_URL}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': env.API_KEY },
      body: JSON.stringify({
        model: env.MODEL,
        max_tokens: 64,
        thread: { type: 'continue', previous_message_id: message.id },
        messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: tool.id, content: 'elsewhere' }] }],
      }),
    });
    if (reply.status !== 200) throw new Error(`the outside continue failed: ${reply.status}`);
  }
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
console.log(JSON.stringify({ final: final.content[0].text }));
