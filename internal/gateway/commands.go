package gateway

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/croupier/croupier/api/netsvr"
)

// errUnknownCmd closes a business that sent a cmd this gateway does not
// know (netsvr does the same).
type errUnknownCmd uint32

func (e errUnknownCmd) Error() string { return fmt.Sprintf("unknown business cmd %d", uint32(e)) }

// dispatch processes one business frame (Broadcast and TopicPublish go
// through fanOutBatch instead). A returned error closes the
// business connection; a body that does not decode is logged and skipped.
func (g *Gateway) dispatch(b *business, cmd uint32, body []byte) error {
	c := netsvr.Cmd(cmd)
	if c == netsvr.Cmd_Register {
		g.register(b, body)
		return nil
	}
	h, ok := handlers[c]
	if !ok {
		return errUnknownCmd(cmd)
	}
	msg := h.new()
	if err := proto.Unmarshal(body, msg); err != nil {
		g.log.Warn("gateway: undecodable business message skipped", "cmd", c.String(), "err", err)
		return nil
	}
	resp := h.run(g, b, msg)
	if resp != nil {
		b.send(g.marshalFrame(c, resp))
	}
	return nil
}

// handler decodes into new() and runs; a non-nil result is the response,
// sent with the request's cmd.
type handler struct {
	new func() proto.Message
	run func(g *Gateway, b *business, m proto.Message) proto.Message
}

// noBody decodes the empty body of the list and count requests.
func noBody() proto.Message { return &netsvr.UnRegisterResp{} }

var handlers = map[netsvr.Cmd]handler{
	netsvr.Cmd_Unregister: {func() proto.Message { return &netsvr.UnRegisterReq{} }, func(g *Gateway, b *business, m proto.Message) proto.Message {
		req := m.(*netsvr.UnRegisterReq)
		target := b
		if req.RegisterId != "" {
			target = g.businesses.byRegisterID(req.RegisterId)
		}
		if target != nil {
			g.businesses.remove(target)
		}
		return &netsvr.UnRegisterResp{}
	}},
	netsvr.Cmd_ConnInfoUpdate: {func() proto.Message { return &netsvr.ConnInfoUpdate{} }, (*Gateway).connInfoUpdate},
	netsvr.Cmd_ConnInfoDelete: {func() proto.Message { return &netsvr.ConnInfoDelete{} }, (*Gateway).connInfoDelete},
	netsvr.Cmd_Multicast: {func() proto.Message { return &netsvr.Multicast{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.Multicast)
		g.fanOut(g.hub.lookup(req.UniqIds), req.Data)
		return nil
	}},
	netsvr.Cmd_SingleCast: {func() proto.Message { return &netsvr.SingleCast{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.SingleCast)
		if c := g.hub.get(req.UniqId); c != nil && len(req.Data) > 0 {
			g.send(c, req.Data)
		}
		return nil
	}},
	netsvr.Cmd_SingleCastBulk: {func() proto.Message { return &netsvr.SingleCastBulk{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.SingleCastBulk)
		for i, id := range req.UniqIds {
			if i >= len(req.Data) {
				break
			}
			if c := g.hub.get(id); c != nil && len(req.Data[i]) > 0 {
				g.send(c, req.Data[i])
			}
		}
		return nil
	}},
	netsvr.Cmd_TopicSubscribe: {func() proto.Message { return &netsvr.TopicSubscribe{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.TopicSubscribe)
		if c := g.hub.subscribe(req.UniqId, req.Topics); c != nil && len(req.Data) > 0 {
			g.send(c, req.Data)
		}
		return nil
	}},
	netsvr.Cmd_TopicUnsubscribe: {func() proto.Message { return &netsvr.TopicUnsubscribe{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.TopicUnsubscribe)
		if c := g.hub.unsubscribe(req.UniqId, req.Topics); c != nil && len(req.Data) > 0 {
			g.send(c, req.Data)
		}
		return nil
	}},
	netsvr.Cmd_TopicDelete: {func() proto.Message { return &netsvr.TopicDelete{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.TopicDelete)
		g.fanOut(g.hub.deleteTopics(req.Topics), req.Data)
		return nil
	}},
	netsvr.Cmd_TopicPublishBulk: {func() proto.Message { return &netsvr.TopicPublishBulk{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.TopicPublishBulk)
		for i, t := range req.Topics {
			if i >= len(req.Data) {
				break
			}
			g.fanOut(g.hub.members([]string{t}), req.Data[i])
		}
		return nil
	}},
	netsvr.Cmd_ForceOffline: {func() proto.Message { return &netsvr.ForceOffline{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.ForceOffline)
		g.Kick(req.UniqIds, req.Data)
		return nil
	}},
	netsvr.Cmd_ForceOfflineGuest: {func() proto.Message { return &netsvr.ForceOfflineGuest{} }, (*Gateway).forceOfflineGuest},
	netsvr.Cmd_CheckOnline: {func() proto.Message { return &netsvr.CheckOnlineReq{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		return &netsvr.CheckOnlineResp{UniqIds: g.hub.online(m.(*netsvr.CheckOnlineReq).UniqIds)}
	}},
	netsvr.Cmd_UniqIdList: {noBody, func(g *Gateway, _ *business, _ proto.Message) proto.Message {
		return &netsvr.UniqIdListResp{ServerId: int32(g.cfg.ServerID), UniqIds: g.hub.uniqIDs()}
	}},
	netsvr.Cmd_UniqIdCount: {noBody, func(g *Gateway, _ *business, _ proto.Message) proto.Message {
		return &netsvr.UniqIdCountResp{ServerId: int32(g.cfg.ServerID), Count: int32(g.hub.count())}
	}},
	netsvr.Cmd_TopicCount: {noBody, func(g *Gateway, _ *business, _ proto.Message) proto.Message {
		return &netsvr.TopicCountResp{ServerId: int32(g.cfg.ServerID), Count: int32(g.hub.topicCount())}
	}},
	netsvr.Cmd_TopicList: {noBody, func(g *Gateway, _ *business, _ proto.Message) proto.Message {
		return &netsvr.TopicListResp{ServerId: int32(g.cfg.ServerID), Topics: g.hub.topicNames()}
	}},
	netsvr.Cmd_TopicUniqIdList: {func() proto.Message { return &netsvr.TopicUniqIdListReq{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		items := map[string]*netsvr.TopicUniqIdListResp_Item{}
		for t, ids := range g.hub.topicMembers(m.(*netsvr.TopicUniqIdListReq).Topics) {
			items[t] = &netsvr.TopicUniqIdListResp_Item{UniqIds: ids}
		}
		return &netsvr.TopicUniqIdListResp{ServerId: int32(g.cfg.ServerID), Items: items}
	}},
	netsvr.Cmd_TopicUniqIdCount: {func() proto.Message { return &netsvr.TopicUniqIdCountReq{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		req := m.(*netsvr.TopicUniqIdCountReq)
		return &netsvr.TopicUniqIdCountResp{ServerId: int32(g.cfg.ServerID), Items: g.hub.topicCounts(req.Topics, req.CountAll)}
	}},
	netsvr.Cmd_Limit: {func() proto.Message { return &netsvr.LimitReq{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		return &netsvr.LimitResp{ServerId: int32(g.cfg.ServerID), Items: g.limits.update(m.(*netsvr.LimitReq))}
	}},
	netsvr.Cmd_ConnOpenCustomUniqIdToken: {noBody, func(g *Gateway, _ *business, _ proto.Message) proto.Message {
		return &netsvr.ConnOpenCustomUniqIdTokenResp{UniqId: g.newUniqID(), Token: g.tokens.issue(time.Now())}
	}},
	netsvr.Cmd_Metrics: {noBody, func(g *Gateway, _ *business, _ proto.Message) proto.Message {
		return g.metrics.resp(g.cfg.ServerID, g.cfg.MetricsItems)
	}},
	netsvr.Cmd_ConnInfo: {func() proto.Message { return &netsvr.ConnInfoReq{} }, func(g *Gateway, _ *business, m proto.Message) proto.Message {
		items := map[string]*netsvr.ConnInfoResp_Item{}
		for id, in := range g.hub.infos(m.(*netsvr.ConnInfoReq).UniqIds) {
			items[id] = &netsvr.ConnInfoResp_Item{Session: in.session, Topics: in.topics}
		}
		return &netsvr.ConnInfoResp{Items: items}
	}},
}

// register answers a RegisterReq. The answer is queued before the business
// joins the manager, so it is the first frame the business receives, and the
// writer is held meanwhile, so the business receives it only once it is
// reachable.
func (g *Gateway) register(b *business, body []byte) {
	req := &netsvr.RegisterReq{}
	resp := &netsvr.RegisterResp{}
	b.mu.Lock()
	already := b.workerID != 0
	b.mu.Unlock()
	switch {
	case proto.Unmarshal(body, req) != nil:
		resp.Code, resp.Message = netsvr.RegisterRespCode_UnmarshalError, "RegisterReq does not decode"
	case req.WorkerId < 1 || req.WorkerId > maxWorkerID:
		resp.Code, resp.Message = netsvr.RegisterRespCode_WorkerIdOverflow, fmt.Sprintf("workerId %d is outside 1–%d", req.WorkerId, maxWorkerID)
	case req.ServerId != uint32(g.cfg.ServerID):
		resp.Code, resp.Message = netsvr.RegisterRespCode_ServerIdInconsistent, fmt.Sprintf("serverId %d differs from this gateway's server id %d", req.ServerId, g.cfg.ServerID)
	case already:
		resp.Code, resp.Message = netsvr.RegisterRespCode_DuplicateRegister, "this connection is already registered; send Unregister first"
	}
	if resp.Code != netsvr.RegisterRespCode_Success {
		b.send(g.marshalFrame(netsvr.Cmd_Register, resp))
		return
	}
	resp.RegisterId = newRegisterID()
	b.flushing.Lock()
	// Not send: with the writer held, waiting for room in a full queue
	// would never end. A business whose queue is full before it has
	// registered is not reading; it is cut off.
	queued := b.trySend(g.marshalFrame(netsvr.Cmd_Register, resp))
	if queued {
		b.mu.Lock()
		b.workerID, b.registerID = req.WorkerId, resp.RegisterId
		b.mu.Unlock()
		b.setPool(int(req.ProcessCmdGoroutineNum)) // register runs on the reader, which owns the pool
		g.businesses.add(b, req.WorkerId)
	}
	b.flushing.Unlock()
	if !queued {
		b.close()
		return
	}
	g.log.Info("gateway: business registered", "worker_id", req.WorkerId, "process_cmd_goroutines", max(1, min(req.ProcessCmdGoroutineNum, maxCmdWorkers)), "remote", b.conn.RemoteAddr().String())
}

func (g *Gateway) connInfoUpdate(_ *business, m proto.Message) proto.Message {
	req := m.(*netsvr.ConnInfoUpdate)
	c, displaced := g.hub.update(req.UniqId, req.NewUniqId, req.NewSession, req.NewSession != "", req.NewTopics)
	if displaced != nil {
		var f []byte
		if len(req.DataAsNewUniqIdExisted) > 0 {
			f = g.frame(req.DataAsNewUniqIdExisted)
		}
		displaced.sendAndClose(f)
	}
	if c != nil && len(req.Data) > 0 {
		g.send(c, req.Data)
	}
	return nil
}

func (g *Gateway) connInfoDelete(_ *business, m proto.Message) proto.Message {
	req := m.(*netsvr.ConnInfoDelete)
	c := g.hub.clear(req.UniqId, req.DelUniqId, req.DelSession, req.DelTopic, g.newUniqID)
	if c != nil && len(req.Data) > 0 {
		g.send(c, req.Data)
	}
	return nil
}

func (g *Gateway) forceOfflineGuest(_ *business, m proto.Message) proto.Message {
	req := m.(*netsvr.ForceOfflineGuest)
	var f []byte
	if len(req.Data) > 0 {
		f = g.frame(req.Data)
	}
	for _, c := range g.hub.guests(req.UniqIds) {
		if req.Delay <= 0 {
			c.sendAndClose(f)
			continue
		}
		// The connection may log in meanwhile: check again when due.
		time.AfterFunc(time.Duration(req.Delay)*time.Second, func() {
			if g.hub.isGuest(c) {
				c.sendAndClose(f)
			}
		})
	}
	return nil
}

// frame encodes data once as a WebSocket frame of the configured type.
func (g *Gateway) frame(data []byte) []byte { return encodeWSFrame(g.sendOp, data) }

// fanOut writes data to every connection in cs, encoding it once.
func (g *Gateway) fanOut(cs []*client, data []byte) {
	if len(data) == 0 || len(cs) == 0 {
		return
	}
	f := g.frame(data)
	for _, c := range cs {
		c.write(f)
	}
	g.wrote(len(cs), len(data))
}

// send writes data to one client.
func (g *Gateway) send(c *client, data []byte) {
	c.write(g.frame(data))
	g.wrote(1, len(data))
}

// wrote counts n messages of size bytes written to clients.
func (g *Gateway) wrote(n, size int) {
	g.metrics.meters[metricWriteCount].add(int64(n))
	g.metrics.meters[metricWriteBytes].add(int64(n * size))
}
