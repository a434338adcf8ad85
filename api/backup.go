package api

// MaxBackupChunk is the most data one Backup message carries: a server
// sends no more, and a client receives messages at least this large
// whatever its own message limit.
const MaxBackupChunk = 1 << 20
