// The text/event-stream format (HTML's Server-Sent Events), parsed as it
// arrives; sse.ts reads the console's streams with it.

export type SSEEvent = { id: string; event: string; data: string }

/** Parses text/event-stream as it arrives, in chunks cut anywhere. */
export class SSEParser {
  private buf = ''
  private ev: SSEEvent = { id: '', event: 'message', data: '' }
  private hasData = false
  private afterCR = false

  constructor(private readonly onEvent: (e: SSEEvent) => void) {}

  push(chunk: string) {
    // A CR ends a line at once; an LF right after it (maybe in the next
    // chunk) belongs to the same line end.
    if (this.afterCR && chunk.startsWith('\n')) chunk = chunk.slice(1)
    this.afterCR = false
    this.buf += chunk
    let nl: number
    while ((nl = this.buf.search(/[\r\n]/)) >= 0) {
      const line = this.buf.slice(0, nl)
      let sep = 1
      if (this.buf[nl] === '\r') {
        if (this.buf[nl + 1] === '\n') sep = 2
        else if (nl === this.buf.length - 1) this.afterCR = true
      }
      this.buf = this.buf.slice(nl + sep)
      this.line(line)
    }
  }

  private line(line: string) {
    if (line === '') {
      if (this.hasData) this.onEvent(this.ev)
      this.ev = { id: '', event: 'message', data: '' }
      this.hasData = false
      return
    }
    if (line.startsWith(':')) return // a comment
    const i = line.indexOf(':')
    const field = i < 0 ? line : line.slice(0, i)
    const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '')
    if (field === 'data') {
      this.ev.data = this.hasData ? `${this.ev.data}\n${val}` : val
      this.hasData = true
    } else if (field === 'event') this.ev.event = val
    else if (field === 'id') this.ev.id = val
  }
}
