import { describe, expect, it } from 'vitest'
import { SSEParser, type SSEEvent } from './sseParser'

function parse(chunks: string[]): SSEEvent[] {
  const out: SSEEvent[] = []
  const p = new SSEParser((e) => out.push({ ...e }))
  for (const c of chunks) p.push(c)
  return out
}

describe('SSEParser', () => {
  const stream = 'id: 1\nevent: PROGRESS\ndata: {"seq":"1"}\n\n: keep-alive\n\nevent: error\ndata: {"code":14}\n\n'
  const want = [
    { id: '1', event: 'PROGRESS', data: '{"seq":"1"}' },
    { id: '', event: 'error', data: '{"code":14}' },
  ]
  it('parses events, skipping comments and empty events', () => {
    expect(parse([stream])).toEqual(want)
  })
  it('gives the same events however the stream is cut', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      expect(parse([stream.slice(0, cut), stream.slice(cut)])).toEqual(want)
    }
    expect(parse([...stream])).toEqual(want) // one character at a time
  })
  it('accepts CRLF and CR line ends, cut between CR and LF too', () => {
    const crlf = stream.replace(/\n/g, '\r\n')
    for (let cut = 1; cut < crlf.length; cut++) {
      expect(parse([crlf.slice(0, cut), crlf.slice(cut)])).toEqual(want)
    }
    expect(parse([stream.replace(/\n/g, '\r')])).toEqual(want)
  })
  it('joins multi-line data and keeps an event without a final blank line pending', () => {
    expect(parse(['data: a\ndata: b\n\ndata: c\n'])).toEqual([{ id: '', event: 'message', data: 'a\nb' }])
  })
})
