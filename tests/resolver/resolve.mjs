// Resolves a did:web with the Decentralized Identity Foundation's resolver (did-resolver +
// web-did-resolver) and prints the W3C DID Resolution result as JSON: what any did:web client
// outside knoop gets. Usage: node resolve.mjs DID (trust a test CA with NODE_EXTRA_CA_CERTS).
import { Resolver } from 'did-resolver';
import { getResolver } from 'web-did-resolver';

const resolver = new Resolver(getResolver());
const result = await resolver.resolve(process.argv[2]);
console.log(JSON.stringify(result));
