// The MessageStream over the WebSocket fallback (/api/room/ws): binary
// frames, one ClientMessage or ServerMessage protobuf each (gRPC-Web has no
// client streaming). Reconnects with backoff and resumes after the last
// seq it saw, so chat is neither missed nor shown twice.
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ClientMessageSchema,
  ServerMessageSchema,
  type ServerMessage,
} from "./gen/synctv/client/v1/client_pb";

/** ErrorMessage codes after which the server ends the stream for good. */
const terminal = new Set(["STREAM_REPLACED", "ROOM_DELETED", "NOT_A_MEMBER", "MEMBER_BANNED"]);

export interface StreamEvents {
  message(m: ServerMessage): void;
  /** Connected (true) or lost (false), with a reason when lost. */
  status(open: boolean, reason?: string): void;
}

export class RoomStream {
  private ws: WebSocket | undefined;
  private lastSeq = 0n;
  private closed = false;
  private backoff = 500;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private nextId = 1;

  constructor(
    private readonly url: string,
    private readonly roomId: string,
    private readonly token: () => string,
    private readonly on: StreamEvents,
  ) {
    this.connect();
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  private connect(): void {
    if (this.closed) return;
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.send({ case: "hello", value: { roomId: this.roomId, afterSeq: this.lastSeq, accessToken: this.token() } });
      this.on.status(true);
    };
    ws.onmessage = (ev) => {
      if (!(ev.data instanceof ArrayBuffer)) return;
      const m = fromBinary(ServerMessageSchema, new Uint8Array(ev.data));
      if (m.seq > this.lastSeq) this.lastSeq = m.seq;
      if (m.payload.case === "error" && terminal.has(m.payload.value.code)) this.closed = true;
      this.on.message(m);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.on.status(false, ev.reason || (this.closed ? "closed" : "reconnecting"));
      if (this.closed) return;
      this.timer = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10_000);
    };
  }

  /** Sends a payload; false when the stream is not open. */
  send(payload: MessageInitShape<typeof ClientMessageSchema>["payload"]): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const m = create(ClientMessageSchema, {
      messageId: String(this.nextId++),
      timestamp: BigInt(Date.now()),
      payload,
    });
    this.ws.send(toBinary(ClientMessageSchema, m));
    return true;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = undefined;
  }
}
