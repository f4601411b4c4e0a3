// The WGSL sources, imported as text (see wgsl.d.ts).
import attention from './shaders/attention.wgsl';
import attentionBlocked from './shaders/attention_blocked.wgsl';
import attentionBlocked2 from './shaders/attention_blocked2.wgsl';
import blockedKvStage from './shaders/blocked_kv_stage.wgsl';
import blockedRowsShared from './shaders/blocked_rows_shared.wgsl';
import blockedRowsSubgroup from './shaders/blocked_rows_subgroup.wgsl';
import attentionDecode from './shaders/attention_decode.wgsl';
import attentionCommon from './shaders/attention_common.wgsl';
import attentionRoles from './shaders/attention_roles.wgsl';
import kvF16 from './shaders/kv_f16.wgsl';
import kvF32 from './shaders/kv_f32.wgsl';
import merge from './shaders/merge.wgsl';
import probeFma from './shaders/probe_fma.wgsl';
import probeRead from './shaders/probe_read.wgsl';
import reduceShared from './shaders/reduce_shared.wgsl';
import reduceSubgroup from './shaders/reduce_subgroup.wgsl';
import tileDirect from './shaders/tile_direct.wgsl';
import tilePrefetch from './shaders/tile_prefetch.wgsl';
import tileShared from './shaders/tile_shared.wgsl';

export const WGSL = { attention, attentionBlocked, attentionBlocked2, blockedKvStage, blockedRowsShared, blockedRowsSubgroup, attentionCommon, attentionDecode, attentionRoles, kvF16, kvF32, merge, probeFma, probeRead, reduceShared, reduceSubgroup, tileDirect, tilePrefetch, tileShared };
