// The ClientService client (Connect protocol over fetch) and the player's
// session: tokens live in sessionStorage, so two tabs can be two players.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ClientService, type User } from "./gen/synctv/client/v1/client_pb";

export interface Session {
  user: User | undefined;
  accessToken: string;
  refreshToken: string;
}

const storageKey = "croupier.watch.session";

export class Api {
  readonly client: Client<typeof ClientService>;
  /** The raw client without the auth interceptor (login, refresh). */
  private readonly bare: Client<typeof ClientService>;
  session: Session | undefined;
  private refreshing: Promise<boolean> | undefined;

  constructor(baseUrl: string) {
    const auth: Interceptor = (next) => async (req) => {
      const call = () => {
        if (this.session) req.header.set("Authorization", "Bearer " + this.session.accessToken);
        return next(req);
      };
      try {
        return await call();
      } catch (e) {
        // An expired access token: rotate the refresh token once, retry.
        if (ConnectError.from(e).code === Code.Unauthenticated && !req.stream && (await this.refresh())) {
          return await call();
        }
        throw e;
      }
    };
    this.client = createClient(ClientService, createConnectTransport({ baseUrl, interceptors: [auth] }));
    this.bare = createClient(ClientService, createConnectTransport({ baseUrl }));
    const saved = sessionStorage.getItem(storageKey);
    if (saved) {
      try {
        const s = JSON.parse(saved) as { user?: { id: string; username: string; guest: boolean }; accessToken: string; refreshToken: string };
        this.session = { user: s.user as User | undefined, accessToken: s.accessToken, refreshToken: s.refreshToken };
      } catch {
        sessionStorage.removeItem(storageKey);
      }
    }
  }

  private save(s: Session | undefined): void {
    this.session = s;
    if (!s) {
      sessionStorage.removeItem(storageKey);
      return;
    }
    const u = s.user ? { id: s.user.id, username: s.user.username, guest: s.user.guest } : undefined;
    sessionStorage.setItem(storageKey, JSON.stringify({ user: u, accessToken: s.accessToken, refreshToken: s.refreshToken }));
  }

  async register(username: string, password: string): Promise<void> {
    const r = await this.bare.register({ username, password });
    this.save({ user: r.user, accessToken: r.accessToken, refreshToken: r.refreshToken });
  }

  async login(username: string, password: string): Promise<void> {
    const r = await this.bare.login({ username, password });
    this.save({ user: r.user, accessToken: r.accessToken, refreshToken: r.refreshToken });
  }

  /** Joins roomId as a guest (no account, no refresh token). */
  async guestJoin(roomId: string, name: string, password = ""): Promise<void> {
    const r = await this.bare.guestJoin({ roomId, name, password });
    this.save({ user: r.user, accessToken: r.accessToken, refreshToken: "" });
  }

  async logout(): Promise<void> {
    const s = this.session;
    this.save(undefined);
    if (s?.refreshToken) await this.bare.logout({ refreshToken: s.refreshToken }).catch(() => undefined);
  }

  /** Rotates the refresh token; false (and logged out) when it is spent. */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        const s = this.session;
        if (!s?.refreshToken) return false;
        try {
          const r = await this.bare.refreshToken({ refreshToken: s.refreshToken });
          this.save({ user: s.user, accessToken: r.accessToken, refreshToken: r.refreshToken });
          return true;
        } catch {
          this.save(undefined);
          return false;
        }
      })().finally(() => (this.refreshing = undefined));
    }
    return this.refreshing;
  }
}

/** The message of an rpc error, for the page. */
export function errorText(e: unknown): string {
  const c = ConnectError.from(e);
  return c.rawMessage || c.message;
}
