// jsforce with the rotated refresh token saved from its `refresh` event.
import { run } from './client.mjs';

await run({ keepRotated: true });
