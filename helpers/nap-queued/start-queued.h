/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "clients/etcd.h"
#include "model/config.h"

/* Starts this host's admitted, detached queued starts (start-common
 * --queue --no-block) through nap-managerd; ret_started: how many. A
 * failure is returned after the others were tried. */
int queued_starts_run(EtcdClient *etcd, const NapConfig *config, unsigned *ret_started, NapError *e);
