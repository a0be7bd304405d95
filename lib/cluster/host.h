/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* This host as a node of the cluster: what nap-node registers.
 *   name      Node=, else the host name (nap_config_node())
 *   address   Host=, else the host name
 *   ids       /etc/machine-id and this boot's id (sd-id128)
 *   capacity  CPU=, Memory=, Storage= of nap.conf where set, else
 *             detected: the CPUs this process may run on (its affinity
 *             mask) × 1000, the physical memory (sysinfo), the size of
 *             the file system holding Root=
 *   labels    Labels=
 *   version   nap's */

#include "model/config.h"
#include "model/node.h"

int nap_host_capacity(const NapConfig *c, NapCapacity *ret, NapError *e);
int nap_host_node(const NapConfig *c, NapNode *ret, NapError *e);
