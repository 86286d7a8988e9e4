/** The answers of GetAssignment, built from the membership and job states. */
import type { JobState, Progress } from './job/job.js';
import type { MembershipState } from './membership/membership.js';
import type { AssignmentMsg } from './protocol.js';

/** The assignment of the member `workerId` at `rank` of the current ring, which starts at `start`. */
export function ringAssignment(o: {
  members: MembershipState;
  job: JobState<unknown>;
  start: Progress;
  workerId: string;
  rank: number;
}): AssignmentMsg {
  return {
    generation: o.members.generation,
    rank: o.rank,
    worldSize: o.members.members.length,
    ring: o.members.members.map((m) => m.peerAddress),
    start: o.start,
    finished: false,
    stateSourceRank: stateSourceRank(o.members, o.job),
    // A worker learns it writes from the last epoch barrier; one that inherits the role after
    // that barrier (the writer was lost) learns it here, or nobody would write.
    writeModel: o.job.phase === 'writing' && o.job.writer === o.workerId,
  };
}

function stateSourceRank(members: MembershipState, job: JobState<unknown>): number {
  const requests = job.assignmentRequests;
  return members.members.some((m) => requests.get(m.workerId) == null)
    ? members.members.findIndex((m) => requests.get(m.workerId) != null)
    : -1;
}

export function finishedAssignment(generation: number, failure: string | null): AssignmentMsg {
  const done = { rank: 0, worldSize: 0, ring: [], start: null, finished: true, stateSourceRank: -1 };
  return { generation, ...done, jobFailure: failure ?? '' };
}
