// Drives `metamath serve` with the official `openai` npm client (a client nobody here wrote).
// Usage: node client.mjs BASE_URL MODEL API_KEY — prints one JSON object with what came back.
import OpenAI from "openai";

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
const out = {};

const c = await client.completions.create({
  model, prompt: "Janet has 16 eggs.", max_tokens: 12, temperature: 0,
});
out.completion = { text: c.choices[0].text, finish_reason: c.choices[0].finish_reason, usage: c.usage };

const messages = [{ role: "user", content: "What is 2 + 3?" }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
out.chat = {
  text: chat.choices[0].message.content,
  role: chat.choices[0].message.role,
  finish_reason: chat.choices[0].finish_reason,
};

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 12, temperature: 0, stream: true,
});
let text = "", chunks = 0, finish = null;
for await (const chunk of stream) {
  chunks += 1;
  const choice = chunk.choices[0];
  if (!choice) continue;
  text += choice.delta?.content ?? "";
  if (choice.finish_reason) finish = choice.finish_reason;
}
out.stream = { text, chunks, finish_reason: finish };

// The client asks for base64 by default and decodes it to floats itself.
const emb = await client.embeddings.create({ model, input: ["one", "two three"] });
out.embeddings = emb.data.map((d) => d.embedding);

out.models = (await client.models.list()).data.map((m) => m.id);

try {
  await client.completions.create({ model, prompt: "x", max_tokens: "many" });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, message: e.message };
}
console.log(JSON.stringify(out));
