// Test oracle: prints the CID the official UnixFS importer gives each file named on the
// command line, with the options that match `ipfs add --cid-version 1`.
import { readFileSync } from "node:fs";
import { importer } from "ipfs-unixfs-importer";
import { MemoryBlockstore } from "blockstore-core/memory";

const options = { cidVersion: 1, rawLeaves: true, reduceSingleLeafToSelf: true };
for (const path of process.argv.slice(2)) {
  const content = readFileSync(path);
  const blockstore = new MemoryBlockstore();
  let root;
  for await (const entry of importer([{ content }], blockstore, options)) root = entry;
  console.log(root.cid.toString());
}
