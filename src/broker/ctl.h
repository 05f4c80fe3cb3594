/*
 * ctl.h - a request's metadata change: hands a controller operation
 * (cluster/controller.h) to the request's broker and the results back to
 * the request's worker.  The controller itself knows nothing of requests.
 */
#ifndef SP_BROKER_CTL_H
#define SP_BROKER_CTL_H

#include "broker/api.h"
#include "cluster/controller.h"

typedef void (*sp_ctl_done_fn)(sp_req_t *req, sp_ctl_op_t *op);

/* Submits op (its strings in req's arena) to req's broker's controller;
 * done(req, op) runs on req's worker once the change is settled.  Holds a
 * reference to req meanwhile.  Worker thread. */
void sp_ctl_submit(sp_req_t *req, sp_ctl_op_t *op, sp_ctl_done_fn done);

#endif
