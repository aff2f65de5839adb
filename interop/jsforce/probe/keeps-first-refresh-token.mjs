// jsforce as it is: after a refresh it keeps presenting the refresh token it started with.
import { run } from './client.mjs';

await run({ keepRotated: false });
