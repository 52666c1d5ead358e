// The console's one login session (see sessionCore.ts).
import { Session } from './sessionCore'

export const session = new Session({ baseUrl: '', storage: localStorage, locks: navigator.locks, events: window })
