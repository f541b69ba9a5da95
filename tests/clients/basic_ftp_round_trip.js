// Node's basic-ftp against Ferry: it sends FEAT, then OPTS UTF8 ON and OPTS MLST, then uses
// MLSD. Usage: node basic_ftp_round_trip.js PORT USER PASSWORD LOCAL_FILE
// Prints a JSON line: the listing's names and sizes, and whether the download matched.
const ftp = require("basic-ftp");
const fs = require("fs");
const path = require("path");
const os = require("os");

async function main() {
  const [port, user, password, local] = process.argv.slice(2);
  const client = new ftp.Client(20000);
  try {
    await client.access({ host: "127.0.0.1", port: Number(port), user, password });
    await client.ensureDir("/from-node");
    await client.uploadFrom(local, "upload.bin");
    const listing = await client.list();
    const back = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "basic-ftp-")), "back.bin");
    await client.downloadTo(back, "upload.bin");
    const same = Buffer.compare(fs.readFileSync(local), fs.readFileSync(back)) === 0;
    const entries = listing.map((e) => ({ name: e.name, size: e.size, isFile: e.isFile }));
    console.log(JSON.stringify({ entries, same }));
  } finally {
    client.close();
  }
}

main().catch((error) => {
  console.error(String(error));
  process.exit(1);
});
