// smtp.mjs — a real SMTP listener for jit's tests (Email OTP).
//
// Built on smtp-server (the SMTP server of the Nodemailer project). Plain
// SMTP, no TLS (STARTTLS is not offered), authentication optional (any
// AUTH PLAIN/LOGIN is accepted, also without TLS, so that credentials in
// the sender's URL can be tested). Listens on 127.0.0.1:$SMTP_PORT (0 or
// unset: a free port).
//
// stdout, one line each:
//   READY <port>                                   once, when listening
//   {"mail_from","rcpt_to":[...],"user","data"}    per received message
//     (JSON; `data` is the raw message, headers and body, as received;
//      `user` is the AUTH user name or null)
// stderr: diagnostics. Exit 0 on SIGTERM/SIGINT, 2 on bad configuration,
// 1 when the port cannot be bound.

import { SMTPServer } from 'smtp-server';

const HOST = '127.0.0.1';
const MAX_MESSAGE_BYTES = 1024 * 1024;

const rawPort = process.env.SMTP_PORT ?? '0';
const port = Number(rawPort === '' ? '0' : rawPort);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`smtp.mjs: SMTP_PORT must be a port number (0 for any free port), got ${JSON.stringify(rawPort)}`);
  process.exit(2);
}

const server = new SMTPServer({
  secure: false,
  disabledCommands: ['STARTTLS'],
  authOptional: true,
  allowInsecureAuth: true,
  authMethods: ['PLAIN', 'LOGIN'],
  size: MAX_MESSAGE_BYTES,
  banner: 'jit interop SMTP listener',
  logger: false,
  onAuth(auth, _session, callback) {
    callback(null, { user: auth.username });
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.on('error', (err) => callback(err));
    stream.on('end', () => {
      if (stream.sizeExceeded) {
        const err = new Error(`message exceeds ${MAX_MESSAGE_BYTES} bytes`);
        err.responseCode = 552;
        callback(err);
        return;
      }
      const envelope = session.envelope;
      const message = {
        mail_from: envelope.mailFrom ? envelope.mailFrom.address : null,
        rcpt_to: envelope.rcptTo.map((rcpt) => rcpt.address),
        user: session.user ?? null,
        data: Buffer.concat(chunks).toString('utf8'),
      };
      process.stdout.write(`${JSON.stringify(message)}\n`);
      callback(null, 'queued');
    });
  },
});

server.on('error', (err) => {
  console.error(`smtp.mjs: ${err.message}`);
  if (!server.server.listening) {
    process.exit(1);
  }
});

server.listen(port, HOST, () => {
  process.stdout.write(`READY ${server.server.address().port}\n`);
});

function stop() {
  // Clients may keep pooled connections open: close politely, but do not wait long.
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
